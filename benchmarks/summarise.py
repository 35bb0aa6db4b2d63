"""Markdown tables of the latest results in benchmarks/results/, for benchmarks/README.md (figures are read from
the JSON files, never typed in).

    .venv/bin/python benchmarks/summarise.py
"""

from __future__ import annotations

import json
from typing import Any

from benchlib import RESULTS


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return data


def header(data: dict[str, Any]) -> str:
    machine = data["machine"]
    return (
        f"_{data['benchmark']}: {data['date']}, commit {data['git_commit']}, {machine['cpu']}, {machine['cores']} "
        f"cores; load average {data['loadavg_start'][0]} at start, {data['loadavg_end'][0]} at end._"
    )


def forward() -> None:
    data = load("forward")
    results = data["results"]
    print(header(data), "\n")
    print("| batch, threads | variant | p50 ms | p95 ms | images/s | CPU ms/run (p50) | speed-up vs torch eager |")
    print("|---|---|---|---|---|---|---|")
    for key, runs in results.items():
        if not key.startswith("batch"):
            continue
        for variant, figures in runs.items():
            if variant == "speedup_vs_torch_eager":
                continue
            print(
                f"| {key.replace('_', ', ')} | {variant} | {figures['p50']} | {figures['p95']} | "
                f"{figures['images_per_s']} | {figures['cpu_ms_p50']} | {runs['speedup_vs_torch_eager'][variant]}× |"
            )
    equivalence = results["equivalence_on_samples"]
    print(
        f"\nTorch vs ONNX Runtime on the {equivalence['images']} sample faces: max |Δ fake probability| "
        f"{equivalence['max_abs_diff_fake_probability']:.1e}, max |Δ logit| {equivalence['max_abs_diff_logits']:.1e}.\n"
    )


def faces() -> None:
    data = load("faces")
    print(header(data), "\n")
    print("| image side | detect p50 / p95 ms | detect + crop p50 / p95 ms |")
    print("|---|---|---|")
    for side, figures in data["results"].items():
        detect, crop = figures["detect_ms"], figures["detect_and_crop_ms"]
        print(f"| {side} | {detect['p50']} / {detect['p95']} | {crop['p50']} / {crop['p95']} |")
    print()


def cold_start() -> None:
    data = load("cold_start")
    results = data["results"]
    print(header(data), "\n")
    print("| backend | process start → /health 200 (s, each start) | RSS at ready (MiB) |")
    print("|---|---|---|")
    for backend in ("onnxruntime", "torch"):
        print(f"| {backend} | {results[backend]['ready_s']} | {results[backend]['rss_mib_ready']} |")
    if "onnxruntime_first_start_with_export_s" in results:
        print(f"| onnxruntime, empty cache (exports first) | {results['onnxruntime_first_start_with_export_s']} | |")
    print()


def http_load() -> None:
    data = load("http_load")
    results = data["results"]
    print(header(data), "\n")
    print(
        "| image, concurrency | req/s | p50 ms | p95 ms | p99 ms | errors | server stages p50 ms (decode+queue / "
        "faces / model) | server CPU ms/req | capacity on 2 dedicated cores (req/s) | RSS after (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, run in results.items():
        if not isinstance(run, dict):
            continue
        stages = run["server_stage_ms_p50"]
        latency = run["latency_ms"]
        print(
            f"| {key} | {run['requests_per_s']} | {latency['p50']} | {latency['p95']} | {latency['p99']} | "
            f"{run['errors']} | {stages.get('decode_ms')} / {stages.get('faces_ms')} / {stages.get('model_ms')} | "
            f"{run['server_cpu_ms_per_request']} | {run['capacity_req_per_s_on_dedicated_cores']} | "
            f"{run['rss_mib_after']} |"
        )
    print(
        f"\nServer RSS: {results['rss_mib_ready']} MiB at ready, {results['rss_mib_after_warm_up']} MiB after warm-up, "
        f"{results['rss_mib_end']} MiB at the end ({results['rss_growth_pct']:+} %).\n"
    )


if __name__ == "__main__":
    forward()
    faces()
    cold_start()
    http_load()
