"""End-to-end `POST /v1/predict` under load: a 256 px face JPEG and a 1280 px photo, at concurrency 1, 8 and 32,
for a fixed time each. A small asyncio + httpx load generator keeps `concurrency` requests in flight; it prints
p50/p95/p99 client latency, requests/s, errors, the server's own stage timings, and the server's RSS.

    .venv/bin/python benchmarks/http_load.py [--seconds 20] [--backend onnxruntime] [--setting DETECTEUR_CASES=false]

The load generator shares the CPU with the server (same machine, as the targets assume). Starts `detecteur
serve` itself on a free loopback port. Writes benchmarks/results/http_load.json (or --name).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
from benchlib import Record, Server, cpu_cores, face_jpeg, percentiles

IMAGES = {"face_256px": 256, "photo_1280px": 1280}
CONCURRENCY = (1, 8, 32)
WARM_UP_REQUESTS = 20


async def load(base_url: str, payload: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies_ms: list[float] = []
    # A request's latency less its server-side model stage (preprocessing, batching and the network): what the
    # request costs with an instant network, so no network can make it faster than this.
    outside_model_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                response = await client.post("/v1/predict", files={"file": ("image.jpg", payload, "image/jpeg")})
            except httpx.HTTPError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                continue
            elapsed = (time.perf_counter() - sent) * 1000
            if response.status_code != 200:
                errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                continue
            latencies_ms.append(elapsed)
            timings = response.json()["results"][0]["timings"]
            for key, value in timings.items():
                stages.setdefault(key, []).append(value)
            outside_model_ms.append(elapsed - timings["model_ms"])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests_ok": len(latencies_ms),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "requests_per_s": round(len(latencies_ms) / elapsed, 1),
        "latency_ms": percentiles(latencies_ms),
        "latency_outside_model_ms": percentiles(outside_model_ms),
        "server_stage_ms_p50": {key: percentiles(values, (50,))["p50"] for key, values in stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default=None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--images", nargs="+", choices=sorted(IMAGES), default=list(IMAGES))
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="DETECTEUR_NAME=VALUE",
        help="a service setting for this run, e.g. DETECTEUR_CASES=false (repeatable): what a stage costs",
    )
    parser.add_argument("--name", default="http_load")
    args = parser.parse_args()

    if not all(setting.startswith("DETECTEUR_") and "=" in setting for setting in args.setting):
        parser.error("--setting takes DETECTEUR_NAME=VALUE")
    settings = dict(setting.split("=", 1) for setting in args.setting)
    env = settings | ({"DETECTEUR_BACKEND": args.backend} if args.backend else {})
    record = Record(
        args.name,
        seconds=args.seconds,
        backend=args.backend or "default",
        concurrency=args.concurrency,
        service_settings=settings,
    )
    results: dict[str, Any] = {}
    with Server(env) as server:
        results["server_ready_s"] = server.ready_s
        results["rss_mib_ready"] = server.rss_mib()
        payloads = {name: face_jpeg(IMAGES[name]) for name in args.images}
        for payload in payloads.values():
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                for _ in range(WARM_UP_REQUESTS):
                    client.post("/v1/predict", files={"file": ("image.jpg", payload, "image/jpeg")})
        rss_before = server.rss_mib()
        results["rss_mib_after_warm_up"] = rss_before
        for name, payload in payloads.items():
            for concurrency in args.concurrency:
                server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
                run = asyncio.run(load(server.base_url, payload, concurrency, args.seconds))
                served = max(run["requests_ok"], 1)
                # CPU time per request does not depend on what else the shared machine runs: 2 dedicated cores
                # could serve at most cores / (server CPU per request) requests per second.
                server_cpu_ms = 1000 * (server.cpu_seconds() - server_cpu) / served
                run["server_cpu_ms_per_request"] = round(server_cpu_ms, 1)
                run["load_generator_cpu_ms_per_request"] = round(1000 * (time.process_time() - client_cpu) / served, 1)
                run["capacity_req_per_s_on_dedicated_cores"] = round(cpu_cores() * 1000 / server_cpu_ms, 1)
                run["rss_mib_after"] = server.rss_mib()
                key = f"{name}_c{concurrency}"
                repeat = sum(existing == key or existing.startswith(f"{key}_run") for existing in results)
                results[f"{key}_run{repeat + 1}" if repeat else key] = run
                print(f"{name} concurrency {concurrency}:", run, flush=True)
        rss_after = server.rss_mib()
        results["rss_mib_end"] = rss_after
        results["rss_growth_pct"] = round(100 * (rss_after - rss_before) / rss_before, 1)
        print(f"server RSS {rss_before} MiB after warm-up -> {rss_after} MiB at the end")
    record.write(results)


if __name__ == "__main__":
    main()
