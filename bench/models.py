#!/usr/bin/env python3
"""Writes the serving benchmark's models (deterministic; not committed):
xgb200.onnx (200 XGBoost trees of depth 6 on 20 features, the size of a card
fraud model) with request.json (one row), and two large tree ensembles for
start-up, forest_10mb.onnx and forest_100mb.onnx (XGBoost, full trees of
depth 10, as many as make about 10 MB and 100 MB); and for the tree
benchmark (`make bench-trees`), two deep ensembles with 4,096 held-out rows
each as their reference inputs: rf_deep (a scikit-learn random forest of 50
unpruned trees, thousands of nodes each) and lgbm_63 (LightGBM, 200 trees of
63 leaves). About 4 minutes.

Usage: models.py OUT_DIR
"""

import json
import os
import sys

import lightgbm
import numpy as np
import xgboost as xgb
from onnxmltools import convert_lightgbm, convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier


def data(rows, features):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=rows) > 0).astype(int)
    return x, y


def convert(model, features):
    return convert_xgboost(model, initial_types=[("input", FloatTensorType([None, features]))], target_opset=15)


def write(path, trees, depth, x, y, **grow):
    model = xgb.XGBClassifier(n_estimators=trees, max_depth=depth, random_state=0, n_jobs=2, **grow).fit(x, y)
    with open(path, "wb") as f:
        f.write(convert(model, x.shape[1]).SerializeToString())
    print(f"{os.path.basename(path)}: {trees} trees of depth {depth}, {os.path.getsize(path) / 1e6:.1f} MB")


def write_full(path, trees, x):
    """Full trees: random labels, no pruning, and a learning rate so small
    that the residuals, and so every tree, stay whole (about 25 KB each)."""
    y = np.random.default_rng(1).integers(0, 2, size=len(x))
    grow = {"min_child_weight": 0, "reg_lambda": 0, "gamma": 0, "learning_rate": 1e-3}
    write(path, trees, 10, x, y, **grow)


def write_deep(out, x, y):
    """The tree benchmark's deep ensembles, each with a reference of 4,096
    rows it was not trained on (so the rows take different paths)."""
    train, held_out = slice(0, 10000), slice(10000, 14096)
    forest = RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=2).fit(x[train], y[train])
    boosted = lightgbm.LGBMClassifier(n_estimators=200, num_leaves=63, random_state=0, verbose=-1).fit(x[train], y[train])
    features = x.shape[1]
    models = {
        "rf_deep": to_onnx(forest, x[:1], options={"zipmap": False}, target_opset={"": 15, "ai.onnx.ml": 3}),
        "lgbm_63": convert_lightgbm(boosted, initial_types=[("input", FloatTensorType([None, features]))],
                                    target_opset=15, zipmap=False),
    }
    for name, model in models.items():
        path = os.path.join(out, f"{name}.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        rows = x[held_out]
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump({"inputs": [{"name": model.graph.input[0].name, "shape": list(rows.shape), "datatype": "FP32",
                                   "data": rows.flatten().tolist()}]}, f)
        print(f"{name}.onnx: {os.path.getsize(path) / 1e6:.1f} MB")


def main(out):
    os.makedirs(out, exist_ok=True)
    x, y = data(20000, 20)
    write(os.path.join(out, "xgb200.onnx"), 200, 6, x[:5000], y[:5000])
    with open(os.path.join(out, "request.json"), "w") as f:
        json.dump({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": x[0].tolist()}]}, f)
    write_full(os.path.join(out, "forest_10mb.onnx"), 405, x)
    write_full(os.path.join(out, "forest_100mb.onnx"), 3440, x)
    write_deep(out, x, y)


if __name__ == "__main__":
    main(sys.argv[1])
