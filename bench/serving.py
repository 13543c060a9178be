#!/usr/bin/env python3
"""The serving benchmark: the release inference server against the HTTP
ceiling of this machine (a bare hyper server answering a fixed 200-byte
JSON body) and a hand-written FastAPI + onnxruntime reference, each driven by
wrk in another process on loopback, in the same run, on the same model and
request; then start-to-ready and memory for 10 MB and 100 MB tree ensembles.
With --drift, only the cost of drift counting: the same server and request
with counting off, on, and on with a Reject rule on every feature, one row
per request at c=1, alternated over rounds. With --shadow, the served model's
latency with no shadow and with a LightGBM challenger shadowing 10 % and
100 % of requests, at c=1 and c=32. With --ensemble, the zoo's GBDT and MLP
alone and as an ensemble, one row at c=1. Prints figures and ratios;
asserts nothing. Run by bench/serving.sh.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request

LOADS = [(1, 1), (32, 2)]  # (connections, wrk threads)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, process, limit=120.0):
    """Seconds from now until GET /v2/health/ready answers 200."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"not ready within {limit} s")


def rss_mb(pid, field="VmRSS"):
    """Resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith(f"{field}:"))
    return kb / 1024


def millis(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(port, script, connections, threads, seconds):
    # SCHED_BATCH: a wrk thread woken by an answer does not preempt the
    # server on its core (bench/README.md, "Why wrk runs as SCHED_BATCH").
    out = subprocess.run(
        ["chrt", "--batch", "0", "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}/v2/models/m/infer"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": millis(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": millis(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "failed": int(failed.group(1)) if failed else 0,
        "errors": errors.group(1) if errors else "",
    }


def serve(command, port):
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_ready(port, process)
    except BaseException:
        process.kill()
        raise
    return process, ready


def measure(name, command, port, script, seconds, rows):
    process, ready = serve(command, port)
    try:
        for connections, threads in LOADS:
            result = wrk(port, script, connections, threads, seconds)
            result.update(server=name, c=connections, rss=rss_mb(process.pid), ready=ready)
            rows.append(result)
            print(f"  {name:<22} c={connections:<3} {result['rps']:>9,.0f} req/s  p50 {result['p50']:.3f} ms  "
                  f"p99 {result['p99']:.3f} ms  failed {result['failed']} {result['errors']}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)


def startup(server, model):
    port = free_port()
    process, ready = serve([server, "--model-uri", model, "--model-name", "m", "--port", str(port)], port)
    try:
        size = os.path.getsize(model) / 1e6
        rss, peak = rss_mb(process.pid), rss_mb(process.pid, "VmHWM")
        print(f"  {os.path.basename(model):<22} {size:6.1f} MB  ready in {ready * 1000:6.0f} ms  RSS {rss:6.1f} MB "
              f"(model + {rss - size:.1f} MB), peak while loading {peak:6.1f} MB", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)


def rounds(title, server, configs, script, seconds, loads=((1, 1),), count=3):
    """Each of `configs` (name, server arguments) under each of `loads`
    (connections, wrk threads), alternated over `count` rounds, each round in
    another order; prints the medians and each p99 against the first
    config's, measured in the same run."""
    from statistics import median

    print(f"{title}, {count} rounds of {seconds} s each, each round in another order:")
    figures = {(name, c): [] for name, _ in configs for c, _ in loads}
    for round_ in range(count):
        for name, arguments in configs[round_ % len(configs):] + configs[:round_ % len(configs)]:
            port = free_port()
            process, _ = serve([server, *arguments, "--model-name", "m", "--port", str(port)], port)
            try:
                for connections, threads in loads:
                    result = wrk(port, script, connections, threads, seconds)
                    figures[(name, connections)].append(result)
                    print(f"  round {round_ + 1} {name:<44} c={connections:<3} {result['rps']:>8,.0f} req/s  "
                          f"p50 {result['p50']:.3f} ms  p99 {result['p99']:.3f} ms  failed {result['failed']} "
                          f"{result['errors']}", flush=True)
            finally:
                process.terminate()
                process.wait(timeout=30)
    first = configs[0][0]
    print(f"\n| server | c | req/s | p50 | p99 | p99 / {first} |")
    print("|---|---|---|---|---|---|")
    for (name, c), results in figures.items():
        p99 = median(r["p99"] for r in results)
        base = median(r["p99"] for r in figures[(first, c)])
        print(f"| {name} | {c} | {median(r['rps'] for r in results):,.0f} | "
              f"{median(r['p50'] for r in results):.3f} ms | {p99:.3f} ms | {p99 / base:.3f} |")
    return figures


def drift(server, model, script, seconds):
    """Single-row latency with drift counting off and on, in one run."""
    from statistics import NormalDist

    deciles = [NormalDist().inv_cdf(q / 10) for q in range(1, 10)]
    baseline = {
        "rows": 20000,
        "features": [{"name": f"f{j}", "tensor": "input", "index": j, "edges": deciles, "proportions": [0.1] * 10,
                      "min": -10.0, "max": 10.0} for j in range(20)],
        "scores": [{"name": "p", "tensor": "probabilities", "index": 1, "edges": [i / 10 for i in range(1, 10)],
                    "proportions": [0.1] * 10}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "baseline.json")
        with open(path, "w") as f:
            json.dump(baseline, f)
        served = ["--model-uri", model]
        counting = served + ["--baseline-uri", f"file://{path}"]
        rules = ["--feature-rule", ",".join(f"f{j}=Reject" for j in range(20))]
        rounds(f"drift counting, {os.path.basename(model)}, one row of 20 features per request", server,
               [("drift off", served), ("drift counting (20 features + score)", counting),
                ("counting + Reject rules on the 20 features", counting + rules)], script, seconds)


def shadow(server, model, challenger, script, seconds):
    """The served model's latency with a shadow off and on, at one caller
    and at 32, in one run."""
    served = ["--model-uri", model]
    configs = [("no shadow", served)] + [
        (f"{os.path.basename(challenger)} shadowing {p} %",
         served + ["--shadow-uri", challenger, "--shadow-percent", str(p), "--shadow-version", "2"])
        for p in (10, 100)
    ]
    rounds(f"shadow, {os.path.basename(model)} served, one row of 20 features per request", server, configs,
           script, seconds, loads=LOADS)


def ensemble(server, zoo, seconds):
    """The zoo's GBDT and MLP alone and as a 0.7/0.3 ensemble, one row per
    request at c=1, in one run."""
    with open(os.path.join(zoo, "gbdt_classifier.json")) as f:
        row = json.load(f)["inputs"][0]["data"][:8]
    body = json.dumps({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32", "data": row}]})
    gbdt, mlp = (f"file://{os.path.join(zoo, m)}.onnx" for m in ("gbdt_classifier", "mlp_classifier"))
    configs = [
        ("mlp_classifier alone", ["--model-uri", mlp]),
        ("gbdt_classifier alone", ["--model-uri", gbdt]),
        ("0.7 gbdt + 0.3 mlp", ["--member", f"gbdt={gbdt}", "--member", f"mlp={mlp}", "--member-weight", "gbdt=0.7",
                                "--member-weight", "mlp=0.3", "--combine", "weighted-sum"]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
            f.write(f"wrk.body = [=[{body}]=]\n")
        figures = rounds("ensemble of the zoo's GBDT and MLP, one row of 8 features per request", server, configs,
                         script, seconds)
    from statistics import median

    p99 = {name: median(r["p99"] for r in figures[(name, 1)]) for name, _ in configs}
    slower = max(p99["mlp_classifier alone"], p99["gbdt_classifier alone"])
    both = p99["mlp_classifier alone"] + p99["gbdt_classifier alone"]
    print(f"\nensemble p99 {p99['0.7 gbdt + 0.3 mlp']:.3f} ms: {p99['0.7 gbdt + 0.3 mlp'] / slower:.2f}x the slower "
          f"member's ({slower:.3f} ms), {p99['0.7 gbdt + 0.3 mlp'] / both:.2f}x the sum of both ({both:.3f} ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin", required=True, help="folder of the release binaries")
    parser.add_argument("--python", required=True, help="the reference's Python")
    parser.add_argument("--models", required=True, help="folder models.py wrote")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per load")
    parser.add_argument("--drift", action="store_true", help="only the cost of drift counting")
    parser.add_argument("--shadow", action="store_true", help="only the cost of a shadow to the served model")
    parser.add_argument("--ensemble", action="store_true", help="only an ensemble against its members")
    parser.add_argument("--zoo", help="the zoo's models folder (--ensemble)")
    args = parser.parse_args()
    model = os.path.join(args.models, "xgb200.onnx")
    with open(os.path.join(args.models, "request.json")) as f:
        body = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
            f.write(f"wrk.body = [=[{body}]=]\n")
        server = os.path.join(args.bin, "aimass-inference-server")
        if args.drift:
            drift(server, model, script, args.seconds)
            return
        if args.shadow:
            shadow(server, model, os.path.join(args.models, "lgbm_63.onnx"), script, args.seconds)
            return
        if args.ensemble:
            ensemble(server, args.zoo, args.seconds)
            return
        ports = [free_port() for _ in range(3)]
        candidates = [
            ("HTTP ceiling (hyper)", [os.path.join(args.bin, "aimass-http-ceiling"), "--port", str(ports[0])], ports[0]),
            ("aimass (defaults)", [server, "--model-uri", model, "--model-name", "m", "--port", str(ports[1])], ports[1]),
            ("FastAPI + onnxruntime", [args.python, os.path.join(os.path.dirname(__file__), "fastapi_reference.py"),
                                       model, str(ports[2])], ports[2]),
        ]
        print(f"serving {os.path.basename(model)}, one row of 20 features per request, wrk for {args.seconds} s per load:")
        rows = []
        for name, command, port in candidates:
            measure(name, command, port, script, args.seconds, rows)
    figure = {(r["server"], r["c"]): r for r in rows}
    ours = "aimass (defaults)"
    print("\n| server | c=1 req/s | c=1 p50 | c=1 p99 | c=32 req/s | c=32 p99 | RSS | ready |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _, _ in candidates:
        one, many = figure[(name, 1)], figure[(name, 32)]
        print(f"| {name} | {one['rps']:,.0f} | {one['p50']:.3f} ms | {one['p99']:.3f} ms | {many['rps']:,.0f} | "
              f"{many['p99']:.3f} ms | {max(one['rss'], many['rss']):.0f} MB | {one['ready']:.2f} s |")
    print("\nratios, measured side by side:")
    for c in (1, 32):
        print(f"  c={c}: aimass / HTTP ceiling {figure[(ours, c)]['rps'] / figure[('HTTP ceiling (hyper)', c)]['rps']:.2f}, "
              f"aimass / FastAPI {figure[(ours, c)]['rps'] / figure[('FastAPI + onnxruntime', c)]['rps']:.1f}x")
    print("\nstart-up of large tree ensembles (aimass defaults):")
    for name in ("forest_10mb.onnx", "forest_100mb.onnx"):
        startup(server, os.path.join(args.models, name))


if __name__ == "__main__":
    main()
