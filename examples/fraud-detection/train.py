#!/usr/bin/env python3
"""Fraud-detection trainer following the aimass trainer contract.

Reads the transactions at AIMASS_DATASET_URI, cleans them the way risk teams
do (types checked, missing values imputed, outliers capped; every count is
reported as a metric), trains a gradient-boosted tree model with the
hyperparameters in AIMASS_HYPERPARAMETERS, prints per-stage metrics (AUC, KS,
log loss, recall and precision at a fixed threshold) as JSON lines, and writes
model.onnx (skl2onnx, zipmap=False, so the inference server returns a plain
probability tensor), metrics.json and baseline.json (the training
distribution of each feature and of the fraud probability, which aimass
measures drift against) under AIMASS_OUTPUT_URI.

A trainer reports why it fails with a JSON line {"error": Reason, "message":
...} before it exits non-zero; aimass shows that reason on the TrainingJob.
"""

import csv
import json
import math
import os
import sys
import urllib.parse
import urllib.request

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
LABEL = "is_fraud"
# Valid ranges; values outside are data errors, not outliers.
VALID = {"hour": (0, 23), "foreign": (0, 1), "card_present": (0, 1), "merchant_category": (0, 1000)}


def emit(**fields):
    print(json.dumps(fields), flush=True)


def fail(reason, message, code=2):
    emit(error=reason, message=message)
    sys.exit(code)


def local_path(uri):
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        return urllib.parse.unquote(parsed.path)
    return None


def read_dataset(uri):
    path = local_path(uri)
    try:
        if path is not None:
            with open(path, newline="") as f:
                return list(csv.DictReader(f))
        if uri.startswith(("http://", "https://")):
            with urllib.request.urlopen(uri, timeout=60) as response:
                return list(csv.DictReader(response.read().decode().splitlines()))
        if uri.startswith("s3://"):
            import boto3  # only needed for s3:// data sets

            bucket, _, key = uri[5:].partition("/")
            body = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL")).get_object(Bucket=bucket, Key=key)["Body"]
            return list(csv.DictReader(body.read().decode().splitlines()))
    except FileNotFoundError:
        fail("DatasetUnavailable", f"the data set {uri} does not exist")
    except Exception as e:  # noqa: BLE001 - any read failure is the data set's
        fail("DatasetUnavailable", f"cannot read the data set {uri}: {e}")
    fail("DatasetUnavailable", f"unsupported data set URI {uri}")


def write_output(uri, name, data):
    path = local_path(uri)
    if path is not None:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
        return
    if uri.startswith("s3://"):
        import boto3

        bucket, _, prefix = uri[5:].partition("/")
        boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL")).put_object(
            Bucket=bucket, Key=f"{prefix.rstrip('/')}/{name}", Body=data
        )
        return
    fail("OutputUnavailable", f"cannot write to {uri}: only file:// and s3:// are supported by this trainer")


def clean(rows):
    """Typed feature rows and labels, with counts of what was fixed."""
    import numpy as np

    counts = {"rows_read": len(rows), "rows_dropped_bad_label": 0, "values_missing": 0, "values_wrong_type": 0, "values_out_of_range": 0, "outliers_capped": 0}
    columns = {f: [] for f in FEATURES}
    labels = []
    for row in rows:
        label = row.get(LABEL, "").strip()
        if label not in ("0", "1"):
            counts["rows_dropped_bad_label"] += 1
            continue
        labels.append(int(label))
        for f in FEATURES:
            raw = (row.get(f) or "").strip()
            if raw == "":
                counts["values_missing"] += 1
                columns[f].append(math.nan)
                continue
            try:
                value = float(raw)
            except ValueError:
                counts["values_wrong_type"] += 1
                columns[f].append(math.nan)
                continue
            low, high = VALID.get(f, (-math.inf, math.inf))
            if not low <= value <= high or not math.isfinite(value):
                counts["values_out_of_range"] += 1
                value = math.nan
            columns[f].append(value)
    x = np.column_stack([np.array(columns[f], dtype=np.float64) for f in FEATURES])
    # Impute with the median, then cap heavy tails at the 99.5th percentile
    # (the observed range, before capping, is the features' contract).
    observed = {}
    for j in range(x.shape[1]):
        col = x[:, j]
        median = np.nanmedian(col)
        col[np.isnan(col)] = median
        observed[FEATURES[j]] = (float(col.min()), float(col.max()))
        cap = np.percentile(col, 99.5)
        if FEATURES[j] in ("amount", "distance_from_home_km", "transactions_last_hour"):
            counts["outliers_capped"] += int((col > cap).sum())
            np.minimum(col, cap, out=col)
    counts["rows_used"] = len(labels)
    return x.astype(np.float32), np.array(labels), counts, observed


def histogram(name, tensor, index, values, observed=None):
    """One baseline column: codes (integers, at most 12 distinct) as
    categories, other numbers as deciles; the share of rows in each bin.
    Each edge lies halfway between a decile and the next distinct value, so
    tied values (tree scores, whole numbers) never straddle an edge and a
    float rounded differently by the server stays in its bin."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    distinct = np.unique(values)
    column = {"name": name, "tensor": tensor, "index": index}
    if len(distinct) <= 12 and np.all(distinct == np.round(distinct)):
        codes = [int(v) for v in distinct]
        column["categories"] = [str(c) for c in codes]
        shares = [float(np.mean(values == c)) for c in codes]
        column["proportions"] = shares + [0.0]
        return column
    deciles = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))
    above = np.searchsorted(distinct, deciles, side="right")
    edges = np.unique([(d + distinct[i]) / 2 for d, i in zip(deciles, above) if i < len(distinct)])
    bins = np.searchsorted(edges, values, side="right")
    column["edges"] = [float(e) for e in edges]
    column["proportions"] = [float(s) for s in np.bincount(bins, minlength=len(edges) + 1) / len(values)]
    if observed is not None:
        column["min"], column["max"] = observed
    return column


def baseline(x, scores, observed):
    """baseline.json: the training distribution of each feature (input
    "transactions", column j) and of the fraud probability (output
    "probabilities", column 1)."""
    return {
        "rows": int(len(x)),
        "features": [histogram(f, "transactions", j, x[:, j], observed[f]) for j, f in enumerate(FEATURES)],
        "scores": [histogram("fraud_probability", "probabilities", 1, scores)],
    }


def evaluate(y, p, threshold):
    from sklearn.metrics import log_loss, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    predicted = p >= threshold
    tp = int((predicted & (y == 1)).sum())
    return {
        "auc": round(float(roc_auc_score(y, p)), 6),
        "ks": round(float((tpr - fpr).max()), 6),
        "logloss": round(float(log_loss(y, p, labels=[0, 1])), 6),
        "recall": round(tp / max(int((y == 1).sum()), 1), 6),
        "precision": round(tp / max(int(predicted.sum()), 1), 6),
    }


def main():
    dataset = os.environ.get("AIMASS_DATASET_URI")
    output = os.environ.get("AIMASS_OUTPUT_URI")
    if not dataset or not output:
        fail("InvalidContract", "AIMASS_DATASET_URI and AIMASS_OUTPUT_URI must be set")
    params = json.loads(os.environ.get("AIMASS_HYPERPARAMETERS") or "{}")
    n_estimators = int(params.get("n_estimators", 60))
    max_depth = int(params.get("max_depth", 3))
    learning_rate = float(params.get("learning_rate", 0.1))
    threshold = float(params.get("threshold", 0.5))
    seed = int(params.get("seed", 0))
    print(f"model {os.environ.get('AIMASS_MODEL_NAME')} version {os.environ.get('AIMASS_MODEL_VERSION')}: reading {dataset}", flush=True)

    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    x, y, counts, observed = clean(read_dataset(dataset))
    emit(step=0, metrics={k: float(v) for k, v in counts.items()})
    if counts["rows_used"] < 100 or len(set(y.tolist())) < 2:
        fail("DatasetInvalid", f"{counts['rows_used']} usable rows with both classes are needed to train")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)

    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate, random_state=seed)
    model.fit(x_train, y_train)
    every = max(n_estimators // 6, 1)
    final = {}
    for stage, proba in enumerate(model.staged_predict_proba(x_test), start=1):
        if stage % every == 0 or stage == n_estimators:
            final = evaluate(y_test, proba[:, 1], threshold)
            train_loss = float(model.train_score_[stage - 1])
            emit(step=stage, metrics={"loss": round(train_loss, 6), **final})

    from skl2onnx import to_onnx

    onnx_model = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    # Name the input after what it holds, for a readable API contract.
    onnx_model.graph.input[0].name = "transactions"
    for node in onnx_model.graph.node:
        node.input[:] = ["transactions" if i == "X" else i for i in node.input]
    write_output(output, "model.onnx", onnx_model.SerializeToString())
    metrics = {**final, **{k: float(v) for k, v in counts.items()}, "fraud_rate": round(float(np.mean(y)), 6)}
    write_output(output, "metrics.json", json.dumps(metrics, indent=2).encode())
    scores = model.predict_proba(x)[:, 1].astype(np.float32)
    write_output(output, "baseline.json", json.dumps(baseline(x, scores, observed), indent=1).encode())
    print(f"wrote model.onnx, metrics.json and baseline.json to {output}", flush=True)


if __name__ == "__main__":
    main()
