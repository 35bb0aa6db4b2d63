"""Ablation of the seed's design choices on one split, one budget: backbone (ResNet18 from scratch vs.
EfficientNet-Lite0 from ImageNet) × input (RGB vs. RGB + Laplacian) over several seeds, then weighted vs.
unweighted cross-entropy on the best cell (chosen by validation AUC, never test).

Every run is a normal `detecteur train` + `evaluate` run under `<out>/<name>/`; the table is computed from
their `report/report.json` files and written to `<out>/ablation.json` and `<out>/ablation.md`.

    python scripts/ablation.py --split data/splits/faces-v1/split.csv --config configs/faces-v1.toml \\
        --out runs/ablation --max-train-images 2000 --epochs 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from detecteur.config import TrainConfig
from detecteur.files import atomic_write_text
from detecteur.training.calibrate import save_calibrated_model
from detecteur.training.evaluate import evaluate_run
from detecteur.training.runs import best_epoch, read_epochs
from detecteur.training.train import train

METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1", "eer", "ece")


def run_cell(base: TrainConfig, split: Path, out: Path, name: str, **changes: Any) -> dict[str, Any]:
    run_dir = out / name
    report_file = run_dir / "report" / "report.json"
    if not report_file.is_file():  # finished runs are kept: the script resumes where it stopped
        config = TrainConfig.model_validate(base.model_dump() | changes)
        train(config, split, run_dir, resume=(run_dir / "checkpoint.pt").exists())
        save_calibrated_model(run_dir, evaluate_run(run_dir))
    report = json.loads(report_file.read_text())
    best_val_auc = best_epoch(read_epochs(run_dir)).val_auc
    return {"name": name, "val_auc": best_val_auc, **{key: report[key] for key in METRICS}}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"seeds": len(runs)}
    for key in ("val_auc", *METRICS):
        values = [run[key] for run in runs if run[key] is not None]
        summary[key] = statistics.fmean(values) if values else None
        summary[f"{key}_spread"] = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return summary


def paired_effect(label: str, without: list[dict[str, Any]], with_: list[dict[str, Any]]) -> str:
    """One sentence on what a change did, from same-seed pairs: the mean test-AUC and recall differences and
    whether every seed agrees on the sign (with 3 seeds, a sign that flips means no measurable effect)."""
    parts = []
    for key in ("roc_auc", "recall"):
        diffs = [b[key] - a[key] for a, b in zip(without, with_, strict=True)]
        agree = all(diff > 0 for diff in diffs) or all(diff < 0 for diff in diffs)
        per_seed = ", ".join(f"{diff:+.4f}" for diff in diffs)
        verdict = "every seed agrees" if agree else "the sign flips between seeds: no measurable effect"
        parts.append(f"test {key} {statistics.fmean(diffs):+.4f} (per seed {per_seed}; {verdict})")
    return f"- {label}: " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--max-train-images", type=int, default=2000)
    parser.add_argument("--max-eval-images", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    budget = {"max_train_images": args.max_train_images, "epochs": args.epochs}
    if args.max_eval_images:
        budget["max_eval_images"] = args.max_eval_images
    base = TrainConfig.model_validate(TrainConfig.from_toml(args.config).model_dump() | budget)
    cells: dict[str, dict[str, Any]] = {}
    for arch, pretrained in (("resnet18", False), ("efficientnet_lite0", True)):
        for in_chans in (3, 4):
            cell = f"{arch}-{in_chans}ch"
            runs = [
                run_cell(
                    base,
                    args.split,
                    args.out,
                    f"{cell}-seed{seed}",
                    arch=arch,
                    pretrained=pretrained,
                    in_chans=in_chans,
                    seed=seed,
                )
                for seed in args.seeds
            ]
            cells[cell] = summarise(runs) | {"runs": runs}
    best = max(cells, key=lambda cell: cells[cell]["val_auc"])
    arch, channels = best.rsplit("-", 1)
    unweighted = [
        run_cell(
            base,
            args.split,
            args.out,
            f"{best}-unweighted-seed{seed}",
            arch=arch,
            pretrained=arch == "efficientnet_lite0",
            in_chans=int(channels[0]),
            seed=seed,
            class_weights=(1.0, 1.0),
        )
        for seed in args.seeds
    ]
    cells[f"{best}-unweighted"] = summarise(unweighted) | {"runs": unweighted}

    result = {"budget": budget, "seeds": args.seeds, "best_by_validation": best, "cells": cells}
    atomic_write_text(args.out / "ablation.json", json.dumps(result, indent=2) + "\n")
    header = "| cell | seeds | val AUC | " + " | ".join(f"test {key}" for key in METRICS) + " |"
    lines = [header, "| --- | ---: |" + " ---: |" * (len(METRICS) + 1)]
    for cell, summary in cells.items():
        values = " | ".join(
            f"{summary[key]:.4f} ± {summary[f'{key}_spread']:.4f}" if summary[key] is not None else "n/a"
            for key in ("val_auc", *METRICS)
        )
        lines.append(f"| {cell} | {summary['seeds']} | {values} |")
    table = "\n".join(lines) + "\n"
    effects = [
        paired_effect(
            f"Laplacian channel on {arch} (4ch vs 3ch)", cells[f"{arch}-3ch"]["runs"], cells[f"{arch}-4ch"]["runs"]
        )
        for arch in ("resnet18", "efficientnet_lite0")
    ]
    effects.append(
        paired_effect(
            f"class weights [1, 5] on {best} (weighted vs unweighted)",
            cells[f"{best}-unweighted"]["runs"],
            cells[best]["runs"],
        )
    )
    reading = "What each change did, same seed against same seed:\n\n" + "\n".join(effects) + "\n"
    atomic_write_text(
        args.out / "ablation.md",
        f"Budget {budget}, seeds {args.seeds}; mean ± half-range.\n\n{table}\n{reading}",
    )
    print(table)
    print(reading)


if __name__ == "__main__":
    main()
