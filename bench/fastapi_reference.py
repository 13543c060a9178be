#!/usr/bin/env python3
"""The reference a team would write by hand: FastAPI and onnxruntime serving
one ONNX model on the Open Inference Protocol v2 infer route, one uvicorn
worker, one onnxruntime thread per request. The serving benchmark measures
aimass against it in the same run.

Usage: fastapi_reference.py MODEL.onnx PORT
"""

import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
NAMES = {v: k for k, v in {"FP32": "tensor(float)", "FP64": "tensor(double)", "INT64": "tensor(int64)", "INT32": "tensor(int32)"}.items()}

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
outputs = [o.name for o in session.get_outputs()]
app = FastAPI()


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    body = await request.json()
    feeds = {
        i["name"]: np.asarray(i["data"], dtype=DTYPES[i["datatype"]]).reshape(i["shape"])
        for i in body["inputs"]
    }
    results = session.run(outputs, feeds)
    return {
        "model_name": name,
        "outputs": [
            {"name": n, "datatype": NAMES.get(t.type, "FP32"), "shape": list(r.shape), "data": r.ravel().tolist()}
            for n, r, t in zip(outputs, results, session.get_outputs())
        ],
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), workers=1, log_level="warning", access_log=False)
