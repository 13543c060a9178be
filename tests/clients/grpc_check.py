#!/usr/bin/env python3
"""Drives an aimass inference server over gRPC with tritonclient.grpc, as
Triton's users call a model, next to its REST API: metadata, inference with
raw tensors (tritonclient's way) and with typed contents (through the
protocol's own stub), each answer identical to the bit to REST's binary one
and close to the zoo reference; then the refusals: no token is
UNAUTHENTICATED, a token without a grant PERMISSION_DENIED, another model
NOT_FOUND, a wrong shape INVALID_ARGUMENT.

Usage: grpc_check.py HTTP_HOST:PORT GRPC_HOST:PORT MODEL REFERENCE.json ALLOWED_TOKEN DENIED_TOKEN
"""

import json
import sys

import grpc
import numpy as np
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.grpc import service_pb2, service_pb2_grpc

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}


def arrays(reference):
    for tensor in reference["inputs"]:
        data = [np.nan if v is None else v for v in tensor["data"]]
        yield tensor, np.array(data, dtype=NUMPY[tensor["datatype"]]).reshape(tensor["shape"])


def refused(call, code):
    try:
        call()
    except tgrpc.InferenceServerException as e:
        assert e.status() == f"StatusCode.{code}", (e.status(), e.message())
        return e.message()
    raise AssertionError(f"served, expected {code}")


def main(http_url, grpc_url, model, reference_path, allowed, denied):
    reference = json.load(open(reference_path))
    # A fresh dict for every call: tritonclient adds its own headers to it.
    bearer = lambda: {"authorization": f"Bearer {allowed}"}
    client = tgrpc.InferenceServerClient(grpc_url)
    assert client.is_server_live(headers=bearer()), "server not live"
    assert client.is_server_ready(headers=bearer()), "server not ready"
    assert client.is_model_ready(model, headers=bearer()), "model not ready"
    assert "binary_tensor_data" in client.get_server_metadata(headers=bearer()).extensions
    metadata = client.get_model_metadata(model, headers=bearer(), as_json=True)
    assert [i["name"] for i in metadata["inputs"]] == [i["name"] for i in reference["inputs"]], metadata

    inputs = []
    rest_inputs = []
    for tensor, array in arrays(reference):
        grpc_input = tgrpc.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        grpc_input.set_data_from_numpy(array)
        inputs.append(grpc_input)
        rest_input = thttp.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        rest_input.set_data_from_numpy(array, binary_data=True)
        rest_inputs.append(rest_input)
    names = [o["name"] for o in reference["outputs"]]
    result = client.infer(
        model, inputs, outputs=[tgrpc.InferRequestedOutput(n) for n in names],
        request_id="grpc-1", headers=bearer(),
    )
    assert result.get_response().id == "grpc-1"
    rest = thttp.InferenceServerClient(http_url).infer(
        model, rest_inputs, outputs=[thttp.InferRequestedOutput(n, binary_data=True) for n in names],
        headers=bearer(),
    )
    for expected in reference["outputs"]:
        got = result.as_numpy(expected["name"])
        same = rest.as_numpy(expected["name"])
        assert got.dtype == same.dtype and got.shape == same.shape, (got, same)
        assert got.tobytes() == same.tobytes(), f"gRPC {got} differs from REST {same}"
        want = np.array(expected["data"], dtype=np.float64).reshape(expected["shape"])
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-5, atol=1e-6)
    print(f"raw tensors: {len(names)} outputs identical to REST")

    # Typed contents, which tritonclient never sends: the protocol's stub.
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(grpc_url))
    typed = service_pb2.ModelInferRequest(model_name=model, id="typed-1")
    for tensor, array in arrays(reference):
        entry = typed.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        field = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents"}[tensor["datatype"]]
        getattr(entry.contents, field).extend(array.flatten().tolist())
    answer = stub.ModelInfer(typed, metadata=list(bearer().items()))
    assert answer.id == "typed-1"
    for i, output in enumerate(answer.outputs):
        raw = answer.raw_output_contents[i]
        assert raw == rest.as_numpy(output.name).tobytes(), f"typed contents: {output.name} differs from REST"
    print(f"typed contents: {len(answer.outputs)} outputs identical to REST")

    message = refused(lambda: client.infer(model, inputs), "UNAUTHENTICATED")
    assert "bearer token" in message, message
    refused(lambda: client.infer(model, inputs, headers={"authorization": f"Bearer {denied}"}), "PERMISSION_DENIED")
    refused(lambda: client.infer("no-such-model", inputs, headers=bearer()), "NOT_FOUND")
    tensor, array = next(arrays(reference))
    wrong = tgrpc.InferInput(tensor["name"], [array.size], tensor["datatype"])
    wrong.set_data_from_numpy(array.flatten())
    message = refused(lambda: client.infer(model, [wrong], headers=bearer()), "INVALID_ARGUMENT")
    assert "shape" in message, message
    print("refusals: UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT")
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:7])
