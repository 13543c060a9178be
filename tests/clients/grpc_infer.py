#!/usr/bin/env python3
"""One gRPC inference with tritonclient.grpc, for the end-to-end tests: sends
the inputs of an OIP REST request (JSON) to ADDRESS, with a bearer token when
given, and prints the outcome as JSON: {"status": "OK", "outputs": {name:
[values]}} or {"status": "<gRPC code>", "message": "..."}. Over TLS when AIMASS_GRPC_CA names the CA file
(AIMASS_GRPC_SERVER_NAME: the name the server's certificate holds), with a
client certificate when AIMASS_GRPC_CERT and AIMASS_GRPC_KEY name its files.

Usage: grpc_infer.py ADDRESS MODEL REQUEST.json [TOKEN]
"""

import json
import os
import sys

import numpy as np
import tritonclient.grpc as tgrpc

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}


def main(address, model, request_path, token=None):
    request = json.load(open(request_path))
    inputs = []
    for tensor in request["inputs"]:
        data = [np.nan if v is None else v for v in tensor["data"]]
        array = np.array(data, dtype=NUMPY[tensor["datatype"]]).reshape(tensor["shape"])
        grpc_input = tgrpc.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        grpc_input.set_data_from_numpy(array)
        inputs.append(grpc_input)
    headers = {"authorization": f"Bearer {token}"} if token else None
    client = tgrpc.InferenceServerClient(address, **tls())
    try:
        result = client.infer(model, inputs, headers=headers, client_timeout=10)
    except tgrpc.InferenceServerException as e:
        print(json.dumps({"status": (e.status() or "").removeprefix("StatusCode."), "message": e.message()}))
        return
    outputs = {o.name: result.as_numpy(o.name).flatten().tolist() for o in result.get_response().outputs}
    print(json.dumps({"status": "OK", "outputs": outputs}))


def tls():
    if "AIMASS_GRPC_CA" not in os.environ:
        return {}
    settings = {
        "ssl": True,
        "root_certificates": os.environ["AIMASS_GRPC_CA"],
        "channel_args": [("grpc.ssl_target_name_override", os.environ["AIMASS_GRPC_SERVER_NAME"])],
    }
    if "AIMASS_GRPC_CERT" in os.environ:
        settings["certificate_chain"] = os.environ["AIMASS_GRPC_CERT"]
        settings["private_key"] = os.environ["AIMASS_GRPC_KEY"]
    return settings


if __name__ == "__main__":
    main(*sys.argv[1:5])
