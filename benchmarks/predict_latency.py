"""End-to-end latency of `POST /v1/predict` at concurrency 1: starts `detecteur serve` on a free loopback
port, waits for `/health`, sends one sample face N times, and prints p50/p95 of the client-side latency and
of the server's own stage timings. Writes `benchmarks/results/predict_latency.json`.

    .venv/bin/python benchmarks/predict_latency.py [--requests 100] [--image PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--image", type=Path, default=Path("tests/data/samples/stylegan-ffhq-real-00006.jpg"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/predict_latency.json"))
    args = parser.parse_args()

    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "detecteur", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"GLOG_minloglevel": "2"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.perf_counter() - started > 120:
                    raise SystemExit("the server did not become ready")
                time.sleep(0.05)
            cold_start = time.perf_counter() - started
            payload = args.image.read_bytes()
            client_ms: list[float] = []
            stages: dict[str, list[float]] = {"decode_ms": [], "faces_ms": [], "model_ms": [], "total_ms": []}
            for _ in range(args.requests):
                sent = time.perf_counter()
                response = client.post("/v1/predict", files={"file": (args.image.name, payload, "image/jpeg")})
                client_ms.append((time.perf_counter() - sent) * 1000)
                response.raise_for_status()
                for key, value in response.json()["results"][0]["timings"].items():
                    stages[key].append(value)
            model_version = client.get("/health").json()["model_version"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "model_version": model_version,
        "image": str(args.image),
        "requests": args.requests,
        "cold_start_s": round(cold_start, 2),
        "client_ms": {"p50": percentile(client_ms, 50), "p95": percentile(client_ms, 95)},
        "server_ms": {key: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for key, v in stages.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
