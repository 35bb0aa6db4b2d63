"""Issue 22's ratios, measured in one run on this machine: the seed-style forward pass against ours and against a
whole request, throughput under load against ONNX Runtime's own batch figure, RSS at ready and cold start.

1. Forward passes, taking turns (a busy moment of the shared machine falls on all of them):
   - the seed-style network: a bare torchvision ResNet18 with a 4-channel first convolution, torch eager, fp32,
     224 px, batch 1, **random initialisation** (speed does not depend on the weights), with 1 thread and with
     every core: the faster is the reference;
   - ours: the graph the service serves for `Settings().model_path` (fp32, or int8 when selected), ONNX Runtime
     with every core, one window at batch 1, and 32 windows at batch 32 (images/s).
2. `detecteur serve` with the service's settings (a cached graph and optimised graph: a throw-away start makes
   them first): cold start (process start → /health 200) and RSS at ready over `--starts` starts; then
   `/v1/predict` of one 256 px face at concurrency 1 (p50) and 8 (requests/s, and model windows/s: each request
   runs its face's windows and, with the stability check on, their degraded copies).

Targets: e2e p50 ≤ 0.5× the seed forward; c8 windows/s ≥ 0.85× ORT batch-32 images/s; RSS ≤ 250 MiB; cold start
≤ 1.5 s. Writes benchmarks/results/serving_ratios.json; `benchmarks/speed_table.py` turns it into the README's table.

    .venv/bin/python benchmarks/serving_ratios.py [--seconds 15] [--starts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
import numpy as np
from benchlib import SERVING_TARGETS as TARGETS
from benchlib import Record, Server, cpu_cores, face_jpeg, percentiles
from http_load import load
from PIL import Image

from detecteur.config import Settings
from detecteur.inference.engine import DEGRADATIONS
from detecteur.inputs.faces import FaceFinder, framed_windows, native_face_crop
from detecteur.model.export import INPUT_NAME, OUTPUT_NAME, graph_for_serving
from detecteur.model.file import read_metadata
from detecteur.model.quantise import serving_graph
from detecteur.model.serving_session import serving_session

FACE_SIDE = 256
SEED_SIZE = 224


def seed_network() -> Any:
    """The seed's bare ResNet18 with 4 input channels (RGB + Laplacian), random weights, eval mode."""
    import torch
    from torchvision.models import resnet18

    network = resnet18(weights=None, num_classes=2)
    network.conv1 = torch.nn.Conv2d(4, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return network.eval()


def forward_passes(repeats: int, threads: int) -> dict[str, Any]:
    """p50 of the seed forward (with 1 thread and with `threads`: the faster one is the reference, so the seed gets
    its best setting) and of ours at batch 1, all taking turns; our batch-32 images/s."""
    import torch

    settings = Settings()
    metadata = read_metadata(settings.model_path)
    graph = serving_graph(settings.model_path, graph_for_serving(settings.model_path), settings.precision)
    session = serving_session(graph, threads)
    size, channels = metadata.input_size, metadata.input_spec.in_chans
    rng = np.random.default_rng(0)
    ours_1 = rng.standard_normal((1, channels, size, size)).astype(np.float32)
    ours_32 = rng.standard_normal((32, channels, size, size)).astype(np.float32)
    seed, seed_input = seed_network(), torch.randn(1, 4, SEED_SIZE, SEED_SIZE)
    seed_ms: dict[int, list[float]] = {1: [], threads: []}
    ours_ms: list[float] = []
    with torch.inference_mode():
        for _ in range(3):  # warm-up
            seed(seed_input)
            session.run([OUTPUT_NAME], {INPUT_NAME: ours_1})
        for _ in range(repeats):
            for seed_threads, times in seed_ms.items():
                torch.set_num_threads(seed_threads)
                started = time.perf_counter()
                seed(seed_input)
                times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            session.run([OUTPUT_NAME], {INPUT_NAME: ours_1})
            ours_ms.append((time.perf_counter() - started) * 1000)
    session.run([OUTPUT_NAME], {INPUT_NAME: ours_32})
    batch_ms = []
    for _ in range(5):
        started = time.perf_counter()
        session.run([OUTPUT_NAME], {INPUT_NAME: ours_32})
        batch_ms.append((time.perf_counter() - started) * 1000)
    seed_by_threads = {f"threads{count}": percentiles(times) for count, times in seed_ms.items()}
    best = min(seed_by_threads.values(), key=lambda figures: figures["p50"])
    return {
        "graph": graph.name,
        "threads": threads,
        "seed_forward_ms_by_threads": seed_by_threads,
        "seed_forward_ms": best,
        "our_forward_ms": percentiles(ours_ms),
        "our_batch32_ms": percentiles(batch_ms),
        "ort_batch32_images_per_s": round(32_000 / statistics.median(batch_ms), 1),
    }


def windows_per_request(payload: bytes, settings: Settings) -> int:
    """How many model windows the service runs for one request with this image: per face, the windows of the
    model's framing, times (1 + the stability copies) when the check is on."""
    import io

    metadata = read_metadata(settings.model_path)
    image = Image.open(io.BytesIO(payload)).convert("RGB")
    finder = FaceFinder()
    try:
        boxes = finder.detect(image) if metadata.framing != "whole_image" else []
    finally:
        finder.close()
    regions = [native_face_crop(image, box) for box in boxes] or [native_face_crop(image, None)]
    if metadata.framing == "whole_image":
        regions = [image]
    windows = sum(len(framed_windows(region, metadata.framing, metadata.input_size)) for region in regions)
    return windows * (1 + len(DEGRADATIONS)) if settings.stability_check else windows


def measured_load(server: Server, payload: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """`load`, with the CPU time the server and this load generator spent on each answered request."""
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    run = asyncio.run(load(server.base_url, payload, concurrency, seconds))
    answered = max(run["requests_ok"], 1)
    run["server_cpu_ms_per_request"] = round((server.cpu_seconds() - server_cpu) * 1000 / answered, 2)
    run["client_cpu_ms_per_request"] = round((time.process_time() - client_cpu) * 1000 / answered, 2)
    return run


def serve_figures(starts: int, seconds: float, payload: bytes) -> dict[str, Any]:
    """Cold starts and RSS at ready (a throw-away start first makes the cached graphs), then load on the last."""
    with Server():
        pass
    cold: list[dict[str, float]] = []
    for index in range(starts):
        server = Server()
        # CPU seconds to ready: the work of starting, which other jobs on the shared machine do not inflate.
        cold.append(
            {"ready_s": server.ready_s, "cpu_s_to_ready": server.cpu_seconds(), "rss_mib_at_ready": server.rss_mib()}
        )
        print(f"start {index + 1}: {cold[-1]}", flush=True)
        if index < starts - 1:
            server.stop()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            for _ in range(20):
                client.post("/v1/predict", files={"file": ("face.jpg", payload, "image/jpeg")})
        runs = {f"c{c}": measured_load(server, payload, c, seconds) for c in (1, 8)}
        rss_after_load = server.rss_mib()
    finally:
        server.stop()
    for name, run in runs.items():
        print(f"{name}: {run['requests_per_s']} req/s, p50 {run['latency_ms']['p50']} ms, {run['errors']} errors")
    return {
        "cold_starts": cold,
        "cold_start_s_median": statistics.median(start["ready_s"] for start in cold),
        "cold_start_cpu_s_median": round(statistics.median(start["cpu_s_to_ready"] for start in cold), 2),
        "rss_mib_at_ready_median": statistics.median(start["rss_mib_at_ready"] for start in cold),
        "rss_mib_after_load": rss_after_load,
        "load": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load run")
    parser.add_argument("--starts", type=int, default=3, help="cold starts measured")
    parser.add_argument("--repeats", type=int, default=40, help="forward passes of each network at batch 1")
    args = parser.parse_args()

    settings = Settings()
    payload = face_jpeg(FACE_SIDE)
    windows = windows_per_request(payload, settings)
    record = Record(
        "serving_ratios",
        model=str(settings.model_path),
        precision=settings.precision,
        batch_window_ms=settings.batch_window_ms,
        inference_threads=settings.inference_threads,
        stability_check=settings.stability_check,
        windows_per_request=windows,
        seconds=args.seconds,
        seed_network="torchvision resnet18, 4-channel conv1, random init, torch eager fp32, 224 px, batch 1",
    )
    forward = forward_passes(args.repeats, cpu_cores())
    print(f"forward: {forward}", flush=True)
    serve = serve_figures(args.starts, args.seconds, payload)
    seed_p50 = forward["seed_forward_ms"]["p50"]
    e2e_p50 = serve["load"]["c1"]["latency_ms"]["p50"]
    outside_model_p50 = serve["load"]["c1"]["latency_outside_model_ms"]["p50"]
    c8 = serve["load"]["c8"]
    c8_windows = c8["requests_per_s"] * windows
    # The network's CPU a window at batch 32 (every core busy for 1 / images-per-second): what the CPU of a c8
    # request leaves outside the network, load generator included, which the 0.85× target needs under ~0.18× the
    # network's share (at full CPU, windows/s over ORT's batch figure = network CPU / all CPU of a request).
    network_cpu_ms = windows * forward["threads"] * 1000 / forward["ort_batch32_images_per_s"]
    request_cpu_ms = c8["server_cpu_ms_per_request"] + c8["client_cpu_ms_per_request"]
    ratios = {
        "e2e_p50_over_seed_forward": round(e2e_p50 / seed_p50, 3),
        # The floor of the e2e ratio: above the target, no network, however fast, meets it on this request path.
        "e2e_outside_model_p50_over_seed_forward": round(outside_model_p50 / seed_p50, 3),
        "our_forward_over_seed_forward": round(forward["our_forward_ms"]["p50"] / seed_p50, 3),
        "c8_windows_per_s_over_ort_batch32": round(c8_windows / forward["ort_batch32_images_per_s"], 3),
    }
    met = {
        "e2e_p50_le_0.5x_seed_forward": ratios["e2e_p50_over_seed_forward"] <= TARGETS["e2e_p50_over_seed_forward_max"],
        "c8_ge_0.85x_ort_batch32": ratios["c8_windows_per_s_over_ort_batch32"]
        >= TARGETS["c8_windows_per_s_over_ort_batch32_min"],
        "rss_at_ready_le_250_mib": serve["rss_mib_at_ready_median"] <= TARGETS["rss_at_ready_mib_max"],
        "cold_start_le_1.5_s": serve["cold_start_s_median"] <= TARGETS["cold_start_s_max"],
    }
    summary = {
        "seed_forward_p50_ms": seed_p50,
        "our_forward_p50_ms": forward["our_forward_ms"]["p50"],
        "e2e_p50_ms_c1": e2e_p50,
        "e2e_outside_model_p50_ms_c1": outside_model_p50,
        "c8_requests_per_s": c8["requests_per_s"],
        "c8_windows_per_s": round(c8_windows, 1),
        "c8_cpu_ms_per_request": round(request_cpu_ms, 2),
        "c8_network_cpu_ms_per_request": round(network_cpu_ms, 2),
        "c8_cpu_ms_per_request_outside_network": round(request_cpu_ms - network_cpu_ms, 2),
        "ort_batch32_images_per_s": forward["ort_batch32_images_per_s"],
        "rss_mib_at_ready": serve["rss_mib_at_ready_median"],
        "cold_start_s": serve["cold_start_s_median"],
        "cold_start_cpu_s": serve["cold_start_cpu_s_median"],
    }
    print(f"summary: {summary}\nratios: {ratios}\ntargets met: {met}")
    record.write({"forward": forward, "serve": serve, "summary": summary, "ratios": ratios, "targets_met": met})


if __name__ == "__main__":
    main()
