"""Lean serving, before/after in one run: `detecteur serve` on the ONNX Runtime backend with the shipped model and
its cached graph, started from this checkout (no torch in the server) and from the commit before the torch-free path
(`--before`, default 7be7b72: torch imported to preprocess), alternately. Figures: cold start (process start → first
`/health` 200; also the CPU seconds the process used until then, which a busy machine does not inflate) and RSS at
ready, medians and after/before ratios, and whether libtorch is mapped into the process.
Targets (issue 22): RSS at ready ≤ 250 MiB, cold start ≤ 1.5 s with a cached graph. Linux only (reads /proc).

    .venv/bin/python benchmarks/lean_serving.py [--starts 3] [--before 7be7b72]

Writes benchmarks/results/lean_serving.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from benchlib import ROOT, Record, Server

from detecteur.config import Settings
from detecteur.model.export import graph_for_serving

BEFORE_COMMIT = "7be7b72"
RSS_TARGET_MIB = 250.0
COLD_START_TARGET_S = 1.5


def checkout_src(commit: str, into: Path) -> Path:
    """The package source of `commit`, unpacked under `into` (`git archive`: the working tree is not touched)."""
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def libtorch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def start_once(src: Path) -> dict[str, float | bool]:
    with Server({"DETECTEUR_BACKEND": "onnxruntime", "PYTHONPATH": str(src)}, timeout_s=600) as server:
        return {
            "ready_s": server.ready_s,
            "cpu_s_to_ready": round(server.cpu_seconds(), 2),
            "rss_mib": server.rss_mib(),
            "libtorch": libtorch_mapped(server.process.pid),
        }


def summarise(starts: list[dict[str, float | bool]]) -> dict[str, Any]:
    return {
        "starts": starts,
        "ready_s_median": statistics.median(float(start["ready_s"]) for start in starts),
        "cpu_s_to_ready_median": statistics.median(float(start["cpu_s_to_ready"]) for start in starts),
        "rss_mib_median": round(statistics.median(float(start["rss_mib"]) for start in starts), 1),
        "libtorch_mapped": any(bool(start["libtorch"]) for start in starts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="starts of each side, alternated")
    parser.add_argument("--before", default=BEFORE_COMMIT, help="the commit to compare with")
    args = parser.parse_args()

    record = Record("lean_serving", starts=args.starts, before=args.before, backend="onnxruntime")
    graph_for_serving(Settings().model_path)  # the cached graph both sides find (same file name, same model)
    sides: dict[str, list[dict[str, float | bool]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as folder:
        sources = {"before": checkout_src(args.before, Path(folder)), "after": ROOT / "src"}
        for _ in range(args.starts):
            for side, src in sources.items():
                sides[side].append(start_once(src))
                print(f"{side}: {sides[side][-1]}", flush=True)
    before, after = summarise(sides["before"]), summarise(sides["after"])
    ratios = {
        "ready_s_after_over_before": round(after["ready_s_median"] / before["ready_s_median"], 3),
        "cpu_s_to_ready_after_over_before": round(after["cpu_s_to_ready_median"] / before["cpu_s_to_ready_median"], 3),
        "rss_after_over_before": round(after["rss_mib_median"] / before["rss_mib_median"], 3),
    }
    targets = {
        "rss_at_ready_le_250_mib": after["rss_mib_median"] <= RSS_TARGET_MIB,
        "cold_start_le_1_5_s": after["ready_s_median"] <= COLD_START_TARGET_S,
    }
    for side, figures in (("before", before), ("after", after)):
        print(
            f"{side:>6}: cold start {figures['ready_s_median']} s ({figures['cpu_s_to_ready_median']} CPU s), "
            f"RSS at ready {figures['rss_mib_median']} MiB, "
            f"libtorch mapped: {figures['libtorch_mapped']}"
        )
    print(
        f"after/before: cold start {ratios['ready_s_after_over_before']}× "
        f"(CPU {ratios['cpu_s_to_ready_after_over_before']}×), RSS {ratios['rss_after_over_before']}×"
    )
    print(f"targets met: {targets}")
    record.write({"before": before, "after": after, "ratios": ratios, "targets_met": targets})


if __name__ == "__main__":
    main()
