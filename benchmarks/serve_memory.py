"""Resident memory of one `detecteur serve` process with the shipped model, to size containers and pods: after
loading, after typical requests (one sample face, N times), and at the peak under a heavy case (concurrent clients
each sending two 36-megapixel JPEGs, near the 40-megapixel limit). Linux only (reads /proc).
Writes `benchmarks/results/serve_memory.json`.

    .venv/bin/python benchmarks/serve_memory.py [--requests 100] [--clients 4]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from benchlib import Server
from PIL import Image

MEBIBYTE = 1024 * 1024


def memory_mib(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024, "peak_rss_mib": int(fields["VmHWM"].split()[0]) / 1024}


def large_jpeg(source: Path, side: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(source).convert("RGB").resize((side, side)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients in the worst case")
    parser.add_argument("--image", type=Path, default=Path("tests/data/samples/stylegan-ffhq-real-00006.jpg"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_memory.json"))
    args = parser.parse_args()

    figures: dict[str, dict[str, float]] = {}
    with Server() as server, httpx.Client(base_url=server.base_url, timeout=120) as client:
        figures["after_load"] = memory_mib(server.process.pid)
        payload = args.image.read_bytes()
        for _ in range(args.requests):
            client.post("/v1/predict", files={"file": (args.image.name, payload)}).raise_for_status()
        figures["after_typical_requests"] = memory_mib(server.process.pid)
        large = large_jpeg(args.image, 6000)

        def worst_case_request(_: int) -> int:
            files = [("files", (f"large-{index}.jpg", large)) for index in range(2)]
            return client.post("/v1/predict", files=files).status_code

        with ThreadPoolExecutor(args.clients) as pool:
            statuses = list(pool.map(worst_case_request, range(args.clients * 3)))
        if any(status != 200 for status in statuses):
            raise SystemExit(f"large-image requests failed: {statuses}")
        figures["after_large_images"] = memory_mib(server.process.pid)
        model_version = client.get("/health").json()["model_version"]

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "model_version": model_version,
        "typical": f"{args.requests} requests with {args.image}",
        "large": f"{args.clients} concurrent clients x 3 requests, each with 2 JPEGs of 6000x6000 pixels",
        **{stage: {key: round(value, 1) for key, value in values.items()} for stage, values in figures.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
