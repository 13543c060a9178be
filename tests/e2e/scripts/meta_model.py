"""Writes a logistic meta-model for stacking to the path given: one ONNX-ML
LinearClassifier over the members' scores (one column per member), with
fixed coefficients and one coefficient row (the positive class, onnxruntime's
convention), followed by the logistic. Prints the weights and intercept as
JSON, so the test computes the stack's answer by hand."""

import json
import sys

import onnx
from onnx import TensorProto, helper

WEIGHTS = [3.0, -1.5]
INTERCEPT = -0.4

node = helper.make_node(
    "LinearClassifier", ["scores"], ["label", "probabilities"], domain="ai.onnx.ml",
    coefficients=WEIGHTS, intercepts=[INTERCEPT], classlabels_ints=[0, 1], post_transform="LOGISTIC",
)
graph = helper.make_graph(
    [node], "meta",
    [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, len(WEIGHTS)])],
    [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
     helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
print(json.dumps({"weights": WEIGHTS, "intercept": INTERCEPT}))
