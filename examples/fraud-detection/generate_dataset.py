#!/usr/bin/env python3
"""Writes a synthetic card-transaction data set for the fraud-detection example.

The data is deterministic for a given --seed and --rows, so every run of the
example trains on the same transactions. It carries the dirt real exports
carry: missing values, impossible outliers and values of the wrong type, so
the trainer's cleaning has something to do.

Usage: generate_dataset.py OUTPUT.csv [--rows N] [--seed S]
"""

import argparse
import csv
import math
import os
import random

COLUMNS = [
    "transaction_id",
    "amount",
    "hour",
    "merchant_category",
    "distance_from_home_km",
    "foreign",
    "card_present",
    "transactions_last_hour",
    "account_age_days",
    "is_fraud",
]


def transaction(rng, index):
    fraud_prone = rng.random() < 0.06
    amount = rng.lognormvariate(3.6 if not fraud_prone else 5.0, 1.0)
    hour = rng.randrange(24) if not fraud_prone else rng.choice([0, 1, 2, 3, 4, 23, rng.randrange(24)])
    category = rng.randrange(12)
    distance = rng.expovariate(1 / 8.0) if not fraud_prone else rng.expovariate(1 / 120.0)
    foreign = int(rng.random() < (0.05 if not fraud_prone else 0.35))
    card_present = int(rng.random() < (0.7 if not fraud_prone else 0.2))
    velocity = min(int(rng.expovariate(1 / (1.0 if not fraud_prone else 4.0))), 40)
    age = int(rng.expovariate(1 / 900.0)) if not fraud_prone else int(rng.expovariate(1 / 120.0))
    # The amount is the strongest single signal, as in real card fraud: a
    # currency-scale mix-up moves the fraud probabilities (see docs/drift.md).
    score = (
        -5.77
        + 1.5 * math.log1p(amount / 50.0)
        + 0.9 * (hour < 5)
        + 0.012 * min(distance, 400)
        + 1.3 * foreign
        - 1.1 * card_present
        + 0.25 * velocity
        - 0.0008 * min(age, 3000)
        + 0.4 * (category in (4, 7))
    )
    is_fraud = int(rng.random() < 1 / (1 + math.exp(-score)))
    row = {
        "transaction_id": f"tx{index:07d}",
        "amount": round(amount, 2),
        "hour": hour,
        "merchant_category": category,
        "distance_from_home_km": round(distance, 1),
        "foreign": foreign,
        "card_present": card_present,
        "transactions_last_hour": velocity,
        "account_age_days": age,
        "is_fraud": is_fraud,
    }
    # The dirt of real exports.
    dirt = rng.random()
    if dirt < 0.02:
        row[rng.choice(["amount", "distance_from_home_km", "account_age_days"])] = ""
    elif dirt < 0.025:
        row["amount"] = "n/a"
    elif dirt < 0.03:
        row["amount"] = round(amount * 1000, 2)
    elif dirt < 0.032:
        row["hour"] = 99
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for i in range(args.rows):
            writer.writerow(transaction(rng, i))
    print(f"wrote {args.rows} transactions to {args.output}")


if __name__ == "__main__":
    main()
