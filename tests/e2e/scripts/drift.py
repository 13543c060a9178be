#!/usr/bin/env python3
"""The drift test's requests and its independent check.

rows CSV COUNT SEED [FEATURE FACTOR]: COUNT rows of the fraud example's
data set (rows with every feature present and valid), drawn with SEED, as a
JSON list of 8 numbers each rounded to float32 (what the server receives);
with FEATURE and FACTOR, that feature multiplied by FACTOR.

stability BASELINE SENT: the population stability index of each score and
the characteristic stability index of each feature, computed with NumPy
from baseline.json and SENT, a JSON file {"rows": [[8 numbers]...],
"scores": [fraud probability...]} of what the test sent and got back.
Prints {"psi": ..., "csi": {feature: ...}, "rows": n}.
"""

import csv
import json
import math
import random
import sys

import numpy as np

FEATURES = [
    "amount",
    "hour",
    "merchant_category",
    "distance_from_home_km",
    "foreign",
    "card_present",
    "transactions_last_hour",
    "account_age_days",
]
FLOOR = 1e-4


def rows(path, count, seed, feature=None, factor=1.0):
    clean = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                values = [float(row[name]) for name in FEATURES]
            except ValueError:
                continue
            if not all(math.isfinite(v) for v in values) or not 0 <= values[1] <= 23:
                continue
            clean.append(values)
    random.Random(seed).shuffle(clean)
    chosen = clean[:count]
    if feature is not None:
        j = FEATURES.index(feature)
        for values in chosen:
            values[j] *= factor
    return [[float(np.float32(v)) for v in values] for values in chosen]


def bins(column, values):
    values = np.asarray(values, dtype=np.float64)
    if "edges" in column:
        places = np.searchsorted(np.asarray(column["edges"], dtype=np.float64), values, side="right")
    else:
        codes = [float(c) for c in column["categories"]]
        other = len(codes)
        places = np.array([codes.index(v) if v in codes else other for v in values])
    return np.bincount(places, minlength=len(column["proportions"]))


def index(column, values):
    counts = bins(column, values)
    actual = np.maximum(counts / counts.sum(), FLOOR)
    expected = np.maximum(np.asarray(column["proportions"], dtype=np.float64), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def stability(baseline_path, sent_path):
    with open(baseline_path) as f:
        baseline = json.load(f)
    with open(sent_path) as f:
        sent = json.load(f)
    matrix = np.asarray(sent["rows"], dtype=np.float32).astype(np.float64)
    scores = np.asarray(sent["scores"], dtype=np.float32).astype(np.float64)
    csi = {c["name"]: index(c, matrix[:, c["index"]]) for c in baseline["features"]}
    psi = index(baseline["scores"][0], scores)
    return {"psi": psi, "csi": csi, "rows": len(matrix)}


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "rows":
        feature = args[3] if len(args) > 3 else None
        factor = float(args[4]) if len(args) > 4 else 1.0
        print(json.dumps(rows(args[0], int(args[1]), int(args[2]), feature, factor)))
    elif command == "stability":
        print(json.dumps(stability(args[0], args[1])))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
