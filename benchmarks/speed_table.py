"""Regenerate the speed table of README.md and docs/speed.md from benchmarks/results (never typed by hand).

Reads `serving_ratios.json` (`benchmarks/serving_ratios.py`), and `int8.json` (`benchmarks/int8.py`) when there is
one, and rewrites the block between `<!-- speed-table:start -->` and `<!-- speed-table:end -->` in each page.
`--check` exits 1 when a page's block differs from what the results give (tests/test_speed_table.py).

    .venv/bin/python benchmarks/speed_table.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchlib import SERVING_TARGETS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = (ROOT / "README.md", ROOT / "docs" / "speed.md")
START, END = "<!-- speed-table:start -->", "<!-- speed-table:end -->"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def serving_rows(data: dict[str, Any]) -> list[str]:
    results, settings = data["results"], data["settings"]
    summary, ratios, met = results["summary"], results["ratios"], results["targets_met"]
    forward = results["forward"]
    e2e_max = SERVING_TARGETS["e2e_p50_over_seed_forward_max"]
    # With every core busy, windows/s over ORT's batch figure is at most the network's share of a request's CPU: the
    # c8 target leaves the rest of a request this many ms.
    c8_min = SERVING_TARGETS["c8_windows_per_s_over_ort_batch32_min"]
    outside_network_max = summary["c8_network_cpu_ms_per_request"] * (1 / c8_min - 1)
    return [
        "| figure (one run, 2 shared cores) | measured | ratio | target | met? |",
        "|---|---|---|---|---|",
        f"| seed-style forward: bare ResNet18, 4 channels, torch eager fp32, 224 px, batch 1, random init | "
        f"{summary['seed_forward_p50_ms']} ms p50 | 1 | | |",
        f"| our forward pass ({forward['graph']}, ONNX Runtime, {forward['threads']} threads, batch 1) | "
        f"{summary['our_forward_p50_ms']} ms p50 | {ratios['our_forward_over_seed_forward']}× seed | | |",
        f"| end-to-end `/v1/predict`, one {256} px face, concurrency 1 | {summary['e2e_p50_ms_c1']} ms p50 | "
        f"{ratios['e2e_p50_over_seed_forward']}× seed | ≤ 0.5× | {_yes(met['e2e_p50_le_0.5x_seed_forward'])} |",
        f"| the same request less its model stage (HTTP, decode, faces, JSON: the floor no network lowers) | "
        f"{summary['e2e_outside_model_p50_ms_c1']} ms p50 | {ratios['e2e_outside_model_p50_over_seed_forward']}× "
        f"seed | ≤ {e2e_max}×, or no network meets the e2e target | "
        f"{_yes(ratios['e2e_outside_model_p50_over_seed_forward'] <= e2e_max)} |",
        f"| throughput at concurrency 8 ({settings['windows_per_request']} model windows per request"
        f"{', stability check on' if settings['stability_check'] else ''}) | {summary['c8_requests_per_s']} req/s = "
        f"{summary['c8_windows_per_s']} windows/s | {ratios['c8_windows_per_s_over_ort_batch32']}× ORT batch 32 "
        f"({summary['ort_batch32_images_per_s']} images/s) | ≥ 0.85× | {_yes(met['c8_ge_0.85x_ort_batch32'])} |",
        f"| CPU a request at concurrency 8, server and load generator (the network's share at batch 32) | "
        f"{summary['c8_cpu_ms_per_request']} ms ({summary['c8_network_cpu_ms_per_request']} ms) | | "
        f"outside the network ≤ {outside_network_max:.1f} ms, for ≥ {c8_min}× | "
        f"{_yes(summary['c8_cpu_ms_per_request_outside_network'] <= outside_network_max)} |",
        f"| RSS at ready | {summary['rss_mib_at_ready']} MiB | | ≤ 250 MiB | {_yes(met['rss_at_ready_le_250_mib'])} |",
        f"| cold start to `/health` 200 (cached graph; CPU seconds it took: {summary['cold_start_cpu_s']}) | "
        f"{summary['cold_start_s']} s | | ≤ 1.5 s | {_yes(met['cold_start_le_1.5_s'])} |",
    ]


def int8_rows(data: dict[str, Any]) -> list[str]:
    report = data["results"]
    fp32, int8, speed = report["fp32"], report["int8"], report["speed_up"]
    verdict = "passes: served by default" if report["passed"] else "not served: " + "; ".join(report["reasons"])
    return [
        "",
        f"Int8 (`detecteur quantise`, {report['calibration_images']} validation faces to calibrate, "
        f"first {report.get('fp32_convolutions', 0)} convolutions fp32, "
        f"{report['test_images']} test faces; {data['date'][:10]}, commit {data['git_commit']}):",
        "",
        "| graph | test AUC | test ECE | forward batch 1 | forward batch 32 |",
        "|---|---|---|---|---|",
        f"| fp32 | {fp32['roc_auc']} | {fp32['ece']} | {report['forward_ms_p50']['fp32']['batch1']} ms | "
        f"{report['forward_ms_p50']['fp32']['batch32']} ms |",
        f"| int8 | {int8['roc_auc']} | {int8['ece']} | {report['forward_ms_p50']['int8']['batch1']} ms "
        f"({speed['batch1']}× faster) | {report['forward_ms_p50']['int8']['batch32']} ms "
        f"({speed['batch32']}× faster) |",
        "",
        f"Int8 {verdict} (gates: AUC within 0.002, ECE within 0.005, ≥ 1.5× faster).",
    ]


def table() -> str:
    serving = json.loads((RESULTS / "serving_ratios.json").read_text())
    lines = [
        f"_Generated by `benchmarks/speed_table.py` from `benchmarks/results/serving_ratios.json` "
        f"({serving['date'][:16]} UTC, commit {serving['git_commit']}, model `{serving['settings']['model']}`, "
        f"batch window {serving['settings']['batch_window_ms']} ms; load average {serving['loadavg_start'][0]} at "
        f"start, {serving['loadavg_end'][0]} at the end, on {serving['machine']['cores']} cores): read the "
        "ratios, which were measured side by side, rather than the absolute times._",
        "",
        *serving_rows(serving),
    ]
    int8 = json.loads((RESULTS / "int8.json").read_text()) if (RESULTS / "int8.json").is_file() else None
    if int8 is not None and int8["settings"]["model"] == serving["settings"]["model"]:  # not another model's
        lines += int8_rows(int8)
    return "\n".join(lines)


def rewritten(page: str, block: str) -> str:
    if START not in page or END not in page:
        raise SystemExit(f"no {START} … {END} block in the page")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a page is out of date instead of writing")
    args = parser.parse_args()
    block = table()
    stale = []
    for page in PAGES:
        text = page.read_text()
        new = rewritten(text, block)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    if args.check and stale:
        print(f"out of date: {', '.join(map(str, stale))}; run benchmarks/speed_table.py", file=sys.stderr)
        raise SystemExit(1)
    print(("up to date" if args.check else "rewrote the speed table in") + f" {', '.join(str(p.name) for p in PAGES)}")


if __name__ == "__main__":
    main()
