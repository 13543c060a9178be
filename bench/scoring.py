#!/usr/bin/env python3
"""The batch scoring benchmark; bench/scoring.sh runs it.

For each model: writes 1 million rows of CSV (features from a normal
distribution, a random label), scores them with one `score` process (one
shard), and reports rows per second of wall time and per CPU-second (the
process's user + system time), and its peak memory; next to it, in the same
run, the tree operators alone on the same model at the same batch (256 rows)
from `aimass-tree-bench`: the ceiling. Then the GBDT over 10 million rows
(the same rows ten times) for peak memory, and 1 million rows in three
shards at once against one. Prints a table; asserts nothing.

The same million rows are also scored as Parquet in and out (written by
pyarrow, run with PARQUET_PYTHON).

Usage: scoring.py RELEASE_DIR BENCH_MODELS ZOO_MODELS WORK_DIR PARQUET_PYTHON
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

ROWS = 1_000_000


def write_rows(path, features, rows, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(",".join([f"f{i}" for i in range(features)] + ["is_fraud"]) + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            x = rng.normal(0, 1.5, size=(n, features)).astype(np.float32)
            y = (rng.random(n) < 0.1).astype(np.float32)
            np.savetxt(f, np.column_stack([x, y]), fmt=["%.6g"] * features + ["%d"], delimiter=",")


def repeat(path, times, out):
    """The rows of `path` `times` over, copied in blocks."""
    with open(out, "wb") as f:
        for i in range(times):
            with open(path, "rb") as rows:
                if i > 0:
                    rows.readline()
                while block := rows.read(1 << 20):
                    f.write(block)


def to_parquet(python, source, target):
    """The CSV as Parquet (FP32 features, row groups of 100,000 rows)."""
    script = (
        "import sys, pyarrow as pa, pyarrow.csv as c, pyarrow.parquet as p\n"
        "t = c.read_csv(sys.argv[1])\n"
        "t = t.cast(pa.schema([pa.field(n, pa.int64() if n == 'is_fraud' else pa.float32()) for n in t.column_names]))\n"
        "p.write_table(t, sys.argv[2], row_group_size=100_000)\n"
    )
    subprocess.run([python, "-c", script, source, target], check=True)


def plan(model, data, out, shards):
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    return json.dumps({
        "dataset": f"file://{data}",
        "versions": [{"version": 1, "uri": f"file://{model}", "sha256": sha}],
        "labelColumn": "is_fraud",
        "thresholds": [0.5],
        "output": f"file://{out}",
        "shards": shards,
        "maxModelBytes": 1 << 30,
    })


def score(server, model, data, out, shards=1):
    """Runs every shard at once, each under GNU time (its own peak RSS and
    CPU time: a child forked from this Python process would count this
    process's memory too); returns wall seconds, CPU seconds, peak RSS (MB)."""
    env_plan = plan(model, data, out, shards)
    started = time.monotonic()
    children = []
    for s in range(shards):
        measured = f"{out}.time-{s}"
        child = subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", "-o", measured, server, "score", "--shard", str(s)],
                                 env={**os.environ, "AIMASS_SCORING_PLAN": env_plan},
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        children.append((child, measured))
    cpu, peak = 0.0, 0
    for child, measured in children:
        output = child.communicate()[0].decode()
        if child.returncode != 0:
            sys.exit(f"score failed: {output}")
        with open(measured) as f:
            kb, user, system = f.read().split()[-3:]
        cpu += float(user) + float(system)
        peak = max(peak, int(kb) // 1024)
    return time.monotonic() - started, cpu, peak


def ceiling(tree_bench, zoo, model):
    """Rows per second of our tree operators alone at 256 rows (one thread)."""
    out = subprocess.run([tree_bench, "--zoo", zoo, "--models", model, "--rows", "256", "--seconds", "2"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == model and parts[1] == "256":
            return 256 / (float(parts[2]) * 1e-6), 256 / (float(parts[3]) * 1e-6)
    sys.exit(f"no figure for {model} in:\n{out}")


def main(release, bench_models, zoo_models, work, parquet_python):
    server = os.path.join(release, "aimass-inference-server")
    tree_bench = os.path.join(release, "aimass-tree-bench")
    cases = [("gbdt_classifier", zoo_models, 8), ("lgbm_63", bench_models, 20)]
    print(f"{'model':<18} {'rows':>10} {'wall s':>8} {'rows/s':>10} {'rows/CPU-s':>11} {'peak MB':>8} "
          f"{'engine rows/s':>14} {'of engine':>10} {'onnxruntime rows/s':>19}")
    for name, directory, features in cases:
        model = os.path.join(directory, f"{name}.onnx")
        data = os.path.join(work, f"{name}.csv")
        write_rows(data, features, ROWS, 7)
        wall, cpu, peak = score(server, model, data, os.path.join(work, f"{name}-out"))
        engine, ort = ceiling(tree_bench, directory, name)
        per_cpu = ROWS / cpu
        print(f"{name:<18} {ROWS:>10,} {wall:>8.2f} {ROWS / wall:>10,.0f} {per_cpu:>11,.0f} {peak:>8} "
              f"{engine:>14,.0f} {per_cpu / engine:>10.2f} {ort:>19,.0f}")
        parquet = os.path.join(work, f"{name}.parquet")
        to_parquet(parquet_python, data, parquet)
        pwall, pcpu, ppeak = score(server, model, parquet, os.path.join(work, f"{name}-parquet-out"))
        print(f"{name + ' (Parquet)':<18} {ROWS:>10,} {pwall:>8.2f} {ROWS / pwall:>10,.0f} {ROWS / pcpu:>11,.0f} "
              f"{ppeak:>8} {engine:>14,.0f} {ROWS / pcpu / engine:>10.2f}")
        if name == "gbdt_classifier":
            big = os.path.join(work, "ten.csv")
            repeat(data, 10, big)
            wall10, cpu10, peak10 = score(server, model, big, os.path.join(work, "ten-out"))
            print(f"{name:<18} {10 * ROWS:>10,} {wall10:>8.2f} {10 * ROWS / wall10:>10,.0f} "
                  f"{10 * ROWS / cpu10:>11,.0f} {peak10:>8}")
            os.remove(big)
            wall3, cpu3, peak3 = score(server, model, data, os.path.join(work, "three-out"), shards=3)
            print(f"\n{name}: 3 shards at once on {os.cpu_count()} CPUs took {wall3:.2f} s against {wall:.2f} s "
                  f"for one: {wall / wall3:.2f}x (CPU {cpu3:.1f} s against {cpu:.1f} s; each shard reads every row)")
            print(f"{name}: {ROWS / cpu * 60 / 1e6:.1f} million rows per minute per core end to end (goal 5)\n")


if __name__ == "__main__":
    main(*sys.argv[1:6])
