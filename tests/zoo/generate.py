#!/usr/bin/env python3
"""Generates the model zoo: small models of every family that risk and fraud
teams export, made with the real exporters (skl2onnx, onnxmltools, onnx's
helpers as torch.onnx.export would write them, onnxruntime's quantizer), and
the outputs onnxruntime computes for a fixed batch of inputs.

Run it with `make zoo`; it writes tests/zoo/models/<name>.onnx and
<name>.json. Everything is seeded, so a re-run reproduces the files.

Each reference file holds:
  family, exporter, opsets: what the model is;
  inputs / outputs: OIP-style tensors {name, datatype, shape, data};
  batch_dependent: whether outputs of one row depend on other rows (dynamic
    quantization computes its scale over the whole batch);
  expect_load_error: for models a server must refuse, a part of the message.
"""

import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Binarizer, Normalizer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

# skl2onnx 1.20 passes HistGradientBoosting's missing-value flags as Python
# booleans, which onnx's make_attribute refuses; give it the 0/1 it expects.
_make_attribute = helper.make_attribute


def _make_attribute_with_bool_lists(key, value, *args, **kwargs):
    if isinstance(value, (list, tuple, np.ndarray)) and any(isinstance(v, (bool, np.bool_)) for v in value):
        value = [int(v) for v in value]
    return _make_attribute(key, value, *args, **kwargs)


helper.make_attribute = _make_attribute_with_bool_lists

OUT = pathlib.Path(__file__).resolve().parent / "models"
FEATURES = 8
ROWS = 16
DATATYPES = {
    np.dtype("float32"): "FP32",
    np.dtype("float64"): "FP64",
    np.dtype("int64"): "INT64",
    np.dtype("int32"): "INT32",
    np.dtype("bool"): "BOOL",
    np.dtype("object"): "BYTES",
}


def transactions(n, seed):
    """Card transactions with fraud labels: amount, hour, merchant risk, …"""
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    score = 1.5 * x[:, 0] - x[:, 1] + 0.8 * x[:, 2] * x[:, 3] + 0.5 * np.sin(3 * x[:, 4])
    binary = (score + 0.3 * rng.normal(size=n) > 0.4).astype(np.int64)
    three = np.digitize(score, [-0.5, 0.8]).astype(np.int64)
    amount = (score * 10 + 50).astype(np.float32)
    return x, binary, three, amount


X, Y, Y3, AMOUNT = transactions(800, 42)
XQ, _, _, _ = transactions(ROWS, 7)


def with_missing(x):
    """A copy with NaN in a few cells, to exercise missing-value handling."""
    x = x.copy()
    x[1, 0] = np.nan
    x[3, 2] = np.nan
    x[5, :] = np.nan
    return x


def tensor(name, array):
    array = np.asarray(array)
    if array.dtype.kind in "US":
        array = array.astype(object)
    datatype = DATATYPES[array.dtype]
    if datatype == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
    elif datatype == "BOOL":
        data = [bool(v) for v in array.ravel()]
    elif datatype.startswith("FP"):
        data = [None if np.isnan(v) else float(v) for v in array.ravel()]
    else:
        data = [int(v) for v in array.ravel()]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def opsets(model):
    return {(o.domain or "ai.onnx"): o.version for o in model.opset_import}


def save(name, family, exporter, model, inputs, batch_dependent=False, expect_load_error=None):
    OUT.mkdir(exist_ok=True)
    model.graph.name = name  # some exporters name the graph with a random id
    path = OUT / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    record = {
        "family": family,
        "exporter": exporter,
        "opsets": opsets(model),
        "batch_dependent": batch_dependent,
        "inputs": [tensor(k, v) for k, v in inputs.items()],
    }
    if expect_load_error:
        record["expect_load_error"] = expect_load_error
    else:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, inputs)
        record["outputs"] = [tensor(n, r) for n, r in zip(names, results)]
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{name}: {family} via {exporter}, opsets {record['opsets']}")


def sk(model, name="features", n=FEATURES, **options):
    return to_onnx(model, initial_types=[(name, FloatTensorType([None, n]))], **options)


def classifier_options(model):
    return {"options": {id(model): {"zipmap": False}}}


def sklearn_zoo():
    inputs = {"features": XQ}

    mlp = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=400, random_state=0).fit(X, Y)
    save("mlp_classifier", "neural-net", "skl2onnx", sk(mlp, **classifier_options(mlp)), inputs)

    scaled = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(X, Y)
    save("logreg_scaler", "linear", "skl2onnx", sk(scaled, options={LogisticRegression: {"zipmap": False}}), inputs)

    normalized = Pipeline([("norm", Normalizer()), ("lr", LogisticRegression())]).fit(X, Y3)
    save("logreg_normalizer_multiclass", "linear", "skl2onnx", sk(normalized, options={LogisticRegression: {"zipmap": False}}), inputs)

    linear = LinearRegression().fit(X, AMOUNT)
    save("linear_regression", "linear", "skl2onnx", sk(linear), inputs)

    imputed = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("binarize", Binarizer(threshold=0.0)), ("lr", LogisticRegression())]
    ).fit(with_missing(X), Y)
    save(
        "imputer_binarizer_logreg",
        "linear",
        "skl2onnx",
        sk(imputed, options={LogisticRegression: {"zipmap": False}}),
        {"features": with_missing(XQ)},
    )

    labels = np.where(Y == 1, "fraud", "legit")
    named = LogisticRegression().fit(X, labels)
    save("logreg_string_labels", "linear", "skl2onnx", sk(named, **classifier_options(named)), inputs)

    zipmapped = LogisticRegression().fit(X, Y)
    save("logreg_zipmap", "linear", "skl2onnx", sk(zipmapped), inputs, expect_load_error="zipmap=False")

    # A categorical column (merchant category code) one-hot encoded next to scaled amounts.
    rng = np.random.RandomState(3)
    mcc = rng.randint(0, 5, size=(len(X), 1)).astype(np.int64)
    mcc_q = rng.randint(0, 6, size=(ROWS, 1)).astype(np.int64)  # 5 is unseen in training
    encoder = ColumnTransformer([("mcc", OneHotEncoder(handle_unknown="ignore"), [0])])
    onehot = Pipeline([("encode", encoder), ("lr", LogisticRegression())]).fit(mcc, Y)
    model = convert_sklearn(
        onehot,
        initial_types=[("mcc", Int64TensorType([None, 1]))],
        options={LogisticRegression: {"zipmap": False}},
    )
    save("onehot_logreg", "linear", "skl2onnx", model, {"mcc": mcc_q})


def torch_style_zoo():
    """An MLP as torch.onnx.export writes it: Gemm/Relu/Sigmoid with a named
    dynamic batch axis, then its dynamically quantized twin."""
    rng = np.random.RandomState(11)
    w1 = rng.normal(scale=0.4, size=(16, FEATURES)).astype(np.float32)
    b1 = rng.normal(scale=0.1, size=(16,)).astype(np.float32)
    w2 = rng.normal(scale=0.4, size=(1, 16)).astype(np.float32)
    b2 = np.array([0.05], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["h"], transB=1),
            helper.make_node("Relu", ["h"], ["a"]),
            helper.make_node("Gemm", ["a", "fc2.weight", "fc2.bias"], ["logit"], transB=1),
            helper.make_node("Sigmoid", ["logit"], ["probability"]),
        ],
        "fraud_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch_size", 1])],
        [
            helper.make_tensor("fc1.weight", TensorProto.FLOAT, w1.shape, w1.ravel()),
            helper.make_tensor("fc1.bias", TensorProto.FLOAT, b1.shape, b1),
            helper.make_tensor("fc2.weight", TensorProto.FLOAT, w2.shape, w2.ravel()),
            helper.make_tensor("fc2.bias", TensorProto.FLOAT, b2.shape, b2),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.ir_version = 8
    onnx.checker.check_model(model)
    save("torch_mlp", "neural-net", "torch.onnx.export (equivalent graph)", model, {"input": XQ})

    OUT.mkdir(exist_ok=True)
    float_path, quant_path = OUT / "torch_mlp.onnx", OUT / "torch_mlp_int8.onnx"
    quantize_dynamic(str(float_path), str(quant_path), weight_type=QuantType.QInt8, op_types_to_quantize=["Gemm", "MatMul"])
    quantized = onnx.load(str(quant_path))
    save("torch_mlp_int8", "quantized", "onnxruntime.quantization.quantize_dynamic", quantized, {"input": XQ}, batch_dependent=True)


def ml3_double_tree():
    """A tree regressor in ai.onnx.ml 3 form: double thresholds, weights and
    base values in *_as_tensor attributes, double input, a threshold where
    single and double precision disagree, and a NaN routed by
    nodes_missing_value_tracks_true. Built with onnx's helpers because
    skl2onnx writes ai.onnx.ml 1 by default."""

    def doubles(name, values):
        return helper.make_attribute(name, onnx.numpy_helper.from_array(np.array(values, dtype=np.float64), name))

    node = helper.make_node(
        "TreeEnsembleRegressor",
        ["features"],
        ["amount"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=[0, 0, 0, 1, 1, 1],
        nodes_nodeids=[0, 1, 2, 0, 1, 2],
        nodes_featureids=[0, 0, 0, 1, 0, 0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0, 1, 0, 0],
        nodes_falsenodeids=[2, 0, 0, 2, 0, 0],
        nodes_missing_value_tracks_true=[1, 0, 0, 0, 0, 0],
        target_treeids=[0, 0, 1, 1],
        target_nodeids=[1, 2, 1, 2],
        target_ids=[0, 0, 0, 0],
    )
    node.attribute.extend(
        [
            doubles("nodes_values_as_tensor", [0.1, 0, 0, -0.3, 0, 0]),
            doubles("target_weights_as_tensor", [1.5, -2.25, 0.125, 10.0]),
            doubles("base_values_as_tensor", [100.0]),
        ]
    )
    graph = helper.make_graph(
        [node],
        "ml3",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, FEATURES])],
        [helper.make_tensor_value_info("amount", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    x = XQ.astype(np.float64)
    x[0, 0], x[1, 0], x[2, 0], x[3, 1] = 0.1, 0.10000001, np.nan, -0.3
    save("tree_regressor_ml3_double", "tree", "onnx.helper (ai.onnx.ml 3)", model, {"features": x})


def tree_ensemble_v5():
    """The ai.onnx.ml 5 TreeEnsemble operator (no exporter writes it by
    default yet): leaves in their own arrays, trees by root index, a
    BRANCH_MEMBER node testing set membership, a NaN routed by
    nodes_missing_value_tracks_true."""
    uint8 = lambda name, values: helper.make_attribute(name, onnx.numpy_helper.from_array(np.array(values, dtype=np.uint8), name))
    floats = lambda name, values: helper.make_attribute(name, onnx.numpy_helper.from_array(np.array(values, dtype=np.float32), name))
    node = helper.make_node(
        "TreeEnsemble", ["features"], ["score"], domain="ai.onnx.ml",
        n_targets=1, aggregate_function=1, post_transform=0,
        tree_roots=[0, 2],
        nodes_featureids=[0, 1, 2],
        nodes_truenodeids=[1, 0, 3], nodes_trueleafs=[0, 1, 1],
        nodes_falsenodeids=[2, 1, 4], nodes_falseleafs=[1, 1, 1],
        nodes_missing_value_tracks_true=[1, 0, 0],
        leaf_targetids=[0, 0, 0, 0, 0],
    )
    node.attribute.extend([
        uint8("nodes_modes", [0, 6, 3]),
        floats("nodes_splits", [0.5, 0.0, 0.0]),
        floats("membership_values", [1.0, 3.0, 7.0]),
        floats("leaf_weights", [1.0, 2.0, 4.0, 0.5, -0.5]),
    ])
    graph = helper.make_graph(
        [node], "tree_ensemble_v5",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, FEATURES])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    x = XQ.copy()
    x[:, 1] = [1, 3, 7, 2, 0, 1, 3, 5, 7, 1, 8, 3, 1, 7, 3, 4]
    x[0, 0], x[4, 0] = np.nan, 0.5
    save("tree_ensemble_v5_member", "tree", "onnx.helper (ai.onnx.ml 5)", model, {"features": x})


def label_encoder_model():
    """Merchant categories (strings) to codes, and codes to risk weights:
    LabelEncoder both ways, with unknown values falling to the defaults."""
    categories = ["grocery", "travel", "gambling", "crypto"]
    encode = helper.make_node(
        "LabelEncoder", ["merchant_category"], ["code"], domain="ai.onnx.ml",
        keys_strings=categories, values_int64s=[0, 1, 2, 3], default_int64=-1,
    )
    weigh = helper.make_node(
        "LabelEncoder", ["code"], ["risk_weight"], domain="ai.onnx.ml",
        keys_int64s=[0, 1, 2, 3], values_floats=[0.1, 0.3, 0.9, 0.8], default_float=0.5,
    )
    graph = helper.make_graph(
        [encode, weigh],
        "label_encoder",
        [helper.make_tensor_value_info("merchant_category", TensorProto.STRING, [None, 1])],
        [
            helper.make_tensor_value_info("code", TensorProto.INT64, [None, 1]),
            helper.make_tensor_value_info("risk_weight", TensorProto.FLOAT, [None, 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    values = np.array([["travel"], ["crypto"], ["pharmacy"], ["grocery"], ["gambling"], [""]], dtype=object)
    save("label_encoder_categories", "preprocessing", "onnx.helper (ai.onnx.ml 2)", model, {"merchant_category": values})


def tree_zoo():
    inputs = {"features": XQ}
    missing = {"features": with_missing(XQ)}

    dt = DecisionTreeClassifier(max_depth=5, random_state=0).fit(X, Y3)
    save("decision_tree_multiclass", "tree", "skl2onnx", sk(dt, **classifier_options(dt)), inputs)

    rf = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, Y)
    save("random_forest_classifier", "tree", "skl2onnx", sk(rf, **classifier_options(rf)), inputs)

    rfr = RandomForestRegressor(n_estimators=15, max_depth=6, random_state=0).fit(X, AMOUNT)
    save("random_forest_regressor", "tree", "skl2onnx", sk(rfr), inputs)

    et = ExtraTreesRegressor(n_estimators=15, max_depth=6, random_state=0).fit(X, AMOUNT)
    save("extra_trees_regressor", "tree", "skl2onnx", sk(et), inputs)

    gb = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(X, Y)
    save("gbdt_classifier", "tree", "skl2onnx", sk(gb, **classifier_options(gb)), inputs)
    gb3 = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, Y3)
    save("gbdt_multiclass", "tree", "skl2onnx", sk(gb3, **classifier_options(gb3)), inputs)
    gbr = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(X, AMOUNT)
    save("gbdt_regressor", "tree", "skl2onnx", sk(gbr), inputs)

    hgb = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(with_missing(X), Y)
    save("hist_gbdt_classifier_missing", "tree", "skl2onnx", sk(hgb, **classifier_options(hgb)), missing)

    import lightgbm
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    ml_input = [("features", MlFloat([None, FEATURES]))]
    xgb = xgboost.XGBClassifier(n_estimators=30, max_depth=4, random_state=0).fit(with_missing(X), Y)
    save(
        "xgboost_classifier_missing",
        "tree",
        "onnxmltools",
        onnxmltools.convert_xgboost(xgb, initial_types=ml_input),
        missing,
    )
    xgr = xgboost.XGBRegressor(n_estimators=30, max_depth=4, random_state=0).fit(X, AMOUNT)
    save("xgboost_regressor", "tree", "onnxmltools", onnxmltools.convert_xgboost(xgr, initial_types=ml_input), inputs)

    lgb = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=15, random_state=0, verbose=-1).fit(X, Y)
    save(
        "lightgbm_classifier",
        "tree",
        "onnxmltools",
        onnxmltools.convert_lightgbm(lgb, initial_types=ml_input, zipmap=False),
        inputs,
    )
    lgr = lightgbm.LGBMRegressor(n_estimators=30, num_leaves=15, random_state=0, verbose=-1).fit(X, AMOUNT)
    save("lightgbm_regressor", "tree", "onnxmltools", onnxmltools.convert_lightgbm(lgr, initial_types=ml_input), inputs)


def main():
    sklearn_zoo()
    torch_style_zoo()
    tree_zoo()
    ml3_double_tree()
    label_encoder_model()
    tree_ensemble_v5()
    return 0


if __name__ == "__main__":
    sys.exit(main())
