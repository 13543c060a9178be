#!/usr/bin/env python3
"""Times onnxruntime on a zoo model, on THREADS threads, for the tree
benchmark.

Usage: ort_bench.py MODEL.onnx REFERENCE.json ROWS SECONDS THREADS
Prints the mean seconds per run over a timed loop of about SECONDS.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main(model, reference, rows, seconds, threads):
    ref = json.load(open(reference))
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feeds = {}
    for t in ref["inputs"]:
        data = np.array([np.nan if v is None else v for v in t["data"]], dtype=np.float32).reshape(t["shape"])
        reps = -(-int(rows) // data.shape[0])
        feeds[t["name"]] = np.tile(data, (reps, 1))[: int(rows)]
    for _ in range(50):
        session.run(None, feeds)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < float(seconds):
        session.run(None, feeds)
        n += 1
    print((time.perf_counter() - start) / n)


if __name__ == "__main__":
    main(*sys.argv[1:6])
