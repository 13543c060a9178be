#!/usr/bin/env python3
"""Drives an aimass inference server with KServe's own Python client
(kserve.InferenceRESTClient, protocol v2), as KServe's users call a model:
readiness, model metadata, and inference with JSON tensors and with binary
tensor data, checked against a zoo reference. KServe's client repeats the
model's name in the body; a body naming another model is refused with 400
and says so. Then its gRPC client (kserve.InferenceGRPCClient) on the gRPC
port: the same answers, identical to the bit to REST's binary ones, and
NOT_FOUND for another model.

Usage: kserve_client_check.py HOST:PORT MODEL_NAME REFERENCE.json GRPC_HOST:PORT
"""

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}


def request(model, reference, binary):
    inputs = []
    for tensor in reference["inputs"]:
        data = [np.nan if v is None else v for v in tensor["data"]]
        array = np.array(data, dtype=NUMPY[tensor["datatype"]]).reshape(tensor["shape"])
        infer_input = InferInput(tensor["name"], list(tensor["shape"]), tensor["datatype"])
        infer_input.set_data_from_numpy(array, binary_data=binary)
        inputs.append(infer_input)
    outputs = [RequestedOutput(o["name"], parameters={"binary_data": binary}) for o in reference["outputs"]]
    return InferRequest(model_name=model, infer_inputs=inputs, request_id="kserve-1", request_outputs=outputs)


def outputs_of(response, reference):
    return {o["name"]: next(t for t in response.outputs if t.name == o["name"]).as_numpy() for o in reference["outputs"]}


async def over_grpc(address, model, reference, rest_answers):
    client = InferenceGRPCClient(address, timeout=10, retries=0)
    try:
        response = await client.infer(request(model, reference, False))
        assert response.id == "kserve-1", response.id
        for name, got in outputs_of(response, reference).items():
            same = rest_answers[name]
            assert got.dtype == same.dtype and got.tobytes() == same.tobytes(), f"{name}: gRPC {got} vs REST {same}"
        print(f"kserve gRPC inference: {len(rest_answers)} outputs identical to REST")
        try:
            await client.infer(request("credit-risk", reference, False))
            raise AssertionError("another model was served over gRPC")
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND and "credit-risk" in e.details(), e
        print("kserve gRPC another model: NOT_FOUND")
    finally:
        await client.close()


async def main(address, model, reference_path, grpc_address):
    reference = json.load(open(reference_path))
    base = f"http://{address}"
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    try:
        assert await client.is_server_ready(base), "server not ready"
        assert await client.is_model_ready(base, model), "model not ready"
        for binary in (False, True):
            response = await client.infer(base, request(model, reference, binary), model_name=model)
            assert response.id == "kserve-1", response.id
            rest_answers = outputs_of(response, reference)
            for expected in reference["outputs"]:
                got = next(o for o in response.outputs if o.name == expected["name"]).as_numpy()
                want = np.array(expected["data"], dtype=np.float64).reshape(expected["shape"])
                np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-5, atol=1e-6)
            print(f"kserve {'binary' if binary else 'JSON'} inference: {len(reference['outputs'])} outputs match")
        # The body names another model than the path: refused, and why.
        try:
            await client.infer(base, request("credit-risk", reference, False), model_name=model)
            raise AssertionError("a body naming another model was served")
        except Exception as e:  # noqa: BLE001 - the client raises httpx's error
            text = str(e) + getattr(getattr(e, "response", None), "text", "")
            assert "400" in text and 'model_name "credit-risk" in the body does not match' in text, text
        print("kserve another model in the body: 400")
    finally:
        await client.close()
    await over_grpc(grpc_address, model, reference, rest_answers)
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
