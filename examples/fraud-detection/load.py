#!/usr/bin/env python3
"""Bounded load for a scoring service: CLIENTS threads send the example
request back to back for SECONDS, then print throughput and status counts.

    AIMASS_TOKEN=$(kubectl -n <namespace> create token fraud-analyst --audience aimass) \\
        python3 load.py http://<service-ip>/v2/models/card-fraud/infer --clients 8 --seconds 60

The token (of a caller allowed to invoke the model, see callers.yaml) comes
from the environment, not the command line, so it stays out of `ps`.

Each client keeps its connection open for --reuse requests, then opens a
new one, so replicas added by the autoscaler get their share (a Service
balances connections, not requests) without paying a TCP handshake per call.

Only the standard library; it stops by itself (at most 64 clients, 600 s).
"""
import argparse
import collections
import http.client
import os
import pathlib
import threading
import time
import urllib.parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the model's infer URL")
    parser.add_argument("--clients", type=int, default=8, choices=range(1, 65), metavar="1..64")
    parser.add_argument("--seconds", type=int, default=60, choices=range(1, 601), metavar="1..600")
    parser.add_argument("--request", default=str(pathlib.Path(__file__).with_name("request.json")))
    parser.add_argument("--reuse", type=int, default=50, choices=range(1, 10001), metavar="1..10000",
                        help="requests per connection before a new one is opened")
    args = parser.parse_args()
    body = pathlib.Path(args.request).read_bytes()
    headers = {"Content-Type": "application/json"}
    if os.environ.get("AIMASS_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["AIMASS_TOKEN"].strip()
    deadline = time.monotonic() + args.seconds
    counts: collections.Counter = collections.Counter()
    latencies: list = []
    lock = threading.Lock()

    url = urllib.parse.urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection

    def client() -> None:
        connection = None
        used = 0
        while time.monotonic() < deadline:
            if connection is None or used >= args.reuse:
                if connection is not None:
                    connection.close()
                connection = connection_class(url.hostname, url.port, timeout=10)
                used = 0
            started = time.monotonic()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                outcome = str(response.status)
                used += 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as e:
                outcome = f"{type(e).__name__}: {e}"
                connection.close()
                connection = None
            with lock:
                counts[outcome] += 1
                latencies.append(time.monotonic() - started)
        if connection is not None:
            connection.close()

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
