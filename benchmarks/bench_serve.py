"""`pricing serve` under load: rate requests per second, p50 and p99 latency.

Run: python benchmarks/bench_serve.py [--seconds 2] [--clients 1,8,64]

Starts `pricing serve rulesets/` as a subprocess on a free local port (one
uvicorn worker, as `pricing serve` runs), then for each number of
concurrent clients keeps that many threads posting the worked example's
usage to POST /v1/rate?contract=acme&explain=false over kept-alive
connections, for a fixed time.  The same usage rated through the Python
API (`Ruleset.rate`, in this process) is measured in the same run, so the
cost of HTTP and JSON is plain to see.

The clients are Python threads in one process: on a small machine they
share the cores with the server, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pricing_dsl

ROOT = Path(__file__).resolve().parent.parent
USAGE = {
    "period": "2026-08",
    "mau": 26250,
    "peak_connections": 2140,
    "voice_minutes": 182000,
    "video_minutes": "96500.5",
}
PATH = "/v1/rate?contract=acme&explain=false"


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def python_api(seconds: float) -> tuple[int, list[float]]:
    rules = pricing_dsl.load(ROOT / "rulesets")
    latencies = []
    end = time.perf_counter() + seconds
    while True:
        t = time.perf_counter()
        if t > end:
            break
        inv = rules.rate("acme", dict(USAGE))
        assert str(inv.total) == "2003.00"
        latencies.append(time.perf_counter() - t)
    return len(latencies), latencies


def http_load(port: int, clients: int, seconds: float) -> tuple[int, list[float], int]:
    body = json.dumps(USAGE).encode()
    headers = {"Content-Type": "application/json"}
    results: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        mine = results[i]
        while not stop.is_set():
            t = time.perf_counter()
            conn.request("POST", PATH, body, headers)
            r = conn.getresponse()
            data = r.read()
            mine.append(time.perf_counter() - t)
            if r.status != 200 or b'"total":"2003.00"' not in data:
                failures[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    latencies = [x for r in results for x in r]
    return len(latencies), latencies, sum(failures)


def start_server() -> tuple[subprocess.Popen[str], int]:
    pricing = Path(sys.executable).parent / "pricing"
    proc = subprocess.Popen(
        [str(pricing), "serve", str(ROOT / "rulesets"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.05)
    return proc, port


def row(name: str, n: int, seconds: float, latencies: list[float]) -> str:
    lat = sorted(latencies)
    p50 = percentile(lat, 0.50) * 1000
    p99 = percentile(lat, 0.99) * 1000
    return f"{name:<22} {n / seconds:>10,.0f} {p50:>9.3f} {p99:>9.3f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--clients", default="1,8,64")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.seconds:g} s per row")
    print(f"{'':<22} {'rates/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    n, lat = python_api(args.seconds)
    print(row("Python API (1 thread)", n, args.seconds, lat))
    proc, port = start_server()
    try:
        http_load(port, 1, 0.3)  # warm up: the first rate compiles acme's plan
        for clients in levels:
            n, lat, failed = http_load(port, clients, args.seconds)
            print(row(f"HTTP, {clients} client{'s' if clients != 1 else ''}", n, args.seconds, lat))
            if failed:
                print(f"  {failed} requests failed")
                return 1
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
