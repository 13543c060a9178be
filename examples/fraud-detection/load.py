#!/usr/bin/env python3
"""Bounded load for a scoring service: CLIENTS threads send the example
request back to back for SECONDS, then print throughput and status counts.

    AIMASS_TOKEN=$(kubectl -n <namespace> create token fraud-analyst --audience aimass) \\
        python3 load.py http://<service-ip>/v2/models/card-fraud/infer --clients 8 --seconds 60

The token (of a caller allowed to invoke the model, see callers.yaml) comes
from the environment, not the command line, so it stays out of `ps`.

Only the standard library; it stops by itself (at most 64 clients, 600 s).
"""
import argparse
import collections
import os
import pathlib
import threading
import time
import urllib.error
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the model's infer URL")
    parser.add_argument("--clients", type=int, default=8, choices=range(1, 65), metavar="1..64")
    parser.add_argument("--seconds", type=int, default=60, choices=range(1, 601), metavar="1..600")
    parser.add_argument("--request", default=str(pathlib.Path(__file__).with_name("request.json")))
    args = parser.parse_args()
    body = pathlib.Path(args.request).read_bytes()
    headers = {"Content-Type": "application/json"}
    if os.environ.get("AIMASS_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["AIMASS_TOKEN"].strip()
    deadline = time.monotonic() + args.seconds
    counts: collections.Counter = collections.Counter()
    latencies: list = []
    lock = threading.Lock()

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            request = urllib.request.Request(args.url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
                    outcome = str(response.status)
            except urllib.error.HTTPError as e:
                outcome = str(e.code)
            except OSError as e:
                outcome = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            with lock:
                counts[outcome] += 1
                latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        with lock:
            done = sum(counts.values())
        print(f"  {done} requests so far", flush=True)
    total = sum(counts.values())
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    print(f"{total} requests in {args.seconds} s ({total / args.seconds:.0f}/s), p99 {p99:.1f} ms, by outcome: {dict(counts)}")


if __name__ == "__main__":
    main()
