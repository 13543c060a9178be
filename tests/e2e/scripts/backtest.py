#!/usr/bin/env python3
"""The ScoringJob test's data and its independent check.

generate PATH ROWS: a CSV of ROWS transactions (id, f0..f7, is_fraud,
channel) like the zoo's classifiers were trained on, with a label that
depends on the features and noise. Two rows are malformed, at the lines
printed as JSON: one with a missing value, one with a word for a number.

check OUT VERSION...: reads the ScoringJob's part-*.csv under OUT and prints,
per version, scikit-learn's AUC and scipy's two-sample KS statistic over
the labelled, scored rows, and how many rows each part holds, as JSON.
"""

import csv
import glob
import json
import os
import random
import sys


def generate(path, rows):
    rng = random.Random(20261206)
    bad = {rows // 2: "missing", rows // 2 + 1: "word"}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", *[f"f{i}" for i in range(8)], "is_fraud", "channel"])
        lines = {}
        for i in range(rows):
            x = [rng.gauss(0, 1.5) for _ in range(8)]
            risk = x[0] - 0.8 * x[2] + 0.5 * x[5] + rng.gauss(0, 1.5)
            label = 1 if risk > 1.0 else 0
            cells = [repr(round(v, 6)) for v in x]
            if bad.get(i) == "missing":
                cells[3] = ""
                lines["missing"] = i + 2
            elif bad.get(i) == "word":
                cells[5] = "six"
                lines["word"] = i + 2
            out.writerow([f"t{i}", *cells, label, ("web", "pos", "atm")[i % 3]])
    print(json.dumps(lines))


def check(out_dir, versions):
    from scipy.stats import ks_2samp
    from sklearn.metrics import roc_auc_score

    scores = {v: [] for v in versions}
    labels = {v: [] for v in versions}
    parts = {}
    for part in sorted(glob.glob(os.path.join(out_dir, "part-*.csv"))):
        with open(part, newline="") as f:
            rows = list(csv.DictReader(f))
        parts[os.path.basename(part)] = len(rows)
        for row in rows:
            for v in versions:
                if row[f"v{v}.refused"] or row["is_fraud"] not in ("0", "1"):
                    continue
                scores[v].append(float(row[f"v{v}.probabilities[1]"]))
                labels[v].append(int(row["is_fraud"]))
    result = {"parts": parts, "versions": {}}
    for v in versions:
        bad = [s for s, y in zip(scores[v], labels[v]) if y == 1]
        good = [s for s, y in zip(scores[v], labels[v]) if y == 0]
        result["versions"][v] = {
            "rows": len(scores[v]),
            "auc": roc_auc_score(labels[v], scores[v]),
            "ks": ks_2samp(bad, good).statistic,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]))
    else:
        check(sys.argv[2], sys.argv[3:])
