"""What the stability check and the evidence lines cost: p50 / p95 latency of `POST /v1/predict` for one 256 px face,
with the stability check on and off (alternating requests, so both see the same machine load), in-process with the
shipped model on the service's default backend and thread settings; and the process CPU per request (all threads),
which the machine's load does not inflate. Target (issue 21): p50 grows by at most 60 %.

    .venv/bin/python benchmarks/stability_latency.py [--iterations 40]

Writes benchmarks/results/stability_latency.json.
"""

from __future__ import annotations

import argparse
import time

from benchlib import Record, face_jpeg, percentiles
from fastapi.testclient import TestClient

from detecteur.api.main import create_app
from detecteur.config import Settings


def client(stability: bool) -> TestClient:
    return TestClient(create_app(Settings(stability_check=stability)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    settings = Settings()
    record = Record(
        "stability_latency",
        iterations=args.iterations,
        image="sample face, 256x256 JPEG q90",
        backend=settings.backend,
        threads_per_inference=settings.threads_per_inference,
    )
    body = face_jpeg(256)
    timings: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}  # process CPU per request: every thread, whatever the load
    provenance_ms: list[float] = []
    with client(True) as on, client(False) as off:
        for test_client in (on, off):
            while test_client.get("/health").status_code != 200:
                time.sleep(0.1)
            for _ in range(3):  # warm-up
                test_client.post("/v1/predict", files={"file": ("face.jpg", body, "image/jpeg")})
        for _ in range(args.iterations):
            for name, test_client in (("on", on), ("off", off)):
                started, cpu_started = time.perf_counter(), time.process_time()
                response = test_client.post("/v1/predict", files={"file": ("face.jpg", body, "image/jpeg")})
                timings[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - cpu_started) * 1000)
                assert response.status_code == 200, response.text
                provenance_ms.append(response.json()["results"][0]["timings"]["provenance_ms"])
    results = {name: percentiles(values, (50, 95)) for name, values in timings.items()}
    results["p50_growth"] = round(results["on"]["p50"] / results["off"]["p50"] - 1, 3)
    results["cpu_ms"] = {name: percentiles(values, (50, 95)) for name, values in cpu.items()}
    results["cpu_p50_growth"] = round(results["cpu_ms"]["on"]["p50"] / results["cpu_ms"]["off"]["p50"] - 1, 3)
    results["provenance_ms"] = percentiles(provenance_ms, (50, 95))
    print(results)
    record.write(results)


if __name__ == "__main__":
    main()
