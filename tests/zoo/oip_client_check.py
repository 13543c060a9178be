#!/usr/bin/env python3
"""Drives an aimass inference server with tritonclient's HTTP client, an Open
Inference Protocol client that exists independently of aimass: liveness and
readiness, server and model metadata, and inference with JSON tensors and
with binary tensor data, checked against a zoo reference.

Usage: oip_client_check.py HOST:PORT MODEL_NAME REFERENCE.json
"""

import json
import sys

import numpy as np
import tritonclient.http as http

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}


def main(url, model, reference_path):
    reference = json.load(open(reference_path))
    client = http.InferenceServerClient(url)
    assert client.is_server_live(), "server not live"
    assert client.is_server_ready(), "server not ready"
    assert client.is_model_ready(model), "model not ready"
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"], server
    metadata = client.get_model_metadata(model)
    assert [i["name"] for i in metadata["inputs"]] == [i["name"] for i in reference["inputs"]], metadata

    for binary in (False, True):
        inputs = []
        for tensor in reference["inputs"]:
            data = [np.nan if v is None else v for v in tensor["data"]]
            array = np.array(data, dtype=NUMPY[tensor["datatype"]]).reshape(tensor["shape"])
            infer_input = http.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
            infer_input.set_data_from_numpy(array, binary_data=binary)
            inputs.append(infer_input)
        outputs = [http.InferRequestedOutput(o["name"], binary_data=binary) for o in reference["outputs"]]
        result = client.infer(model, inputs, outputs=outputs, request_id="tritonclient-1")
        assert result.get_response()["id"] == "tritonclient-1"
        for expected in reference["outputs"]:
            got = result.as_numpy(expected["name"])
            want = np.array(expected["data"], dtype=np.float64).reshape(expected["shape"])
            np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-5, atol=1e-6)
        print(f"tritonclient {'binary' if binary else 'JSON'} inference: {len(reference['outputs'])} outputs match")

    try:
        client.infer("no-such-model", inputs)
        raise AssertionError("an unknown model was served")
    except http.InferenceServerException as e:
        assert "unknown model" in str(e), e
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:4])
