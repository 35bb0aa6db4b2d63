"""Every leave-one-generator-out sweep on main, one row each, with its figures and its training time: the ledger
issue 20's closing note asks for ("every run with its LOGO figures and wall time").

    python -m scripts.logo_ledger [--reports docs/logo] [--runs runs] [--out docs/logo/LEDGER.md]

The figures come from each sweep's `logo.json` (`detecteur evaluate --logo … --out DIR`, `scripts/logo_ensemble.py`,
`scripts/logo_window_grid.py`). Training minutes come from the folds of `logo.json` where the sweep recorded them
(`train_seconds`, since session 18), or else from the fold folders under `--runs` (`runs/logo-<sweep>/<fold>/`)
that still hold that sweep: their `config.json` names the sweep's split and seed and, where the fold had a
validation AUC, their best epoch is the fold's. A folder several folds share (one model scored on every generator)
counts once; a recipe that starts from another run's model (`init_weights`, a two-stage recipe) adds that run's
training once, in its own column. "—" where no file says; scoring time is in no file (`docs/generalisation.md`
states it per session).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detecteur.training.logo import SHARED_FOLD
from detecteur.training.runs import RunDescription, best_epoch, read_description, read_epochs, training_seconds

FIRST_PROTOCOL = "a fold leaves its generator's whole source out (sessions 9–10)"
REALS_KEPT = "a fold leaves out the generator's fakes, its reals stay (session 11 on)"
SAME_AUC = 1e-9


@dataclass(frozen=True)
class Training:
    """Minutes of training a sweep's files account for, and how many of its fold models they cover."""

    minutes: float
    folds_counted: int
    folds: int
    stage_one: Path | None = None  # the run whose model it started from, when it did


def how_made(report: dict[str, Any]) -> str:
    if "members" in report:
        combine = report.get("combine", "mean")
        return f"ensemble ({combine}) of {' + '.join(f'`{m}`' for m in report['members'])}: nothing trained"
    if "window_centres" in report:
        return f"`{Path(report['sweep']).name}` re-scored on {len(report['window_centres'])} windows: nothing trained"
    budget = report["budget"]
    draws = budget.get("max_train_images") or "every"
    full = ", the full recipe" if budget.get("full_recipe") else ""
    return f"trained: {draws} draws × {budget['epochs']} epoch(s) a fold{full}"


def holds_this_sweep(run_dir: Path, report: dict[str, Any], fold: dict[str, Any]) -> bool:
    """Whether `run_dir` is the model this fold of `report` was scored with (a later sweep may have reused the name)."""
    if not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "config.json").is_file():
        return False
    description = read_description(run_dir)
    if Path(description.split_file).name != Path(report["split_file"]).name:
        return False
    if report.get("seed") is not None and description.config.get("seed") != report["seed"]:
        return False
    epochs = read_epochs(run_dir)
    if not epochs:
        return False
    fold_auc = fold.get("val_auc") or 0.0
    return fold_auc == 0.0 or abs(best_epoch(epochs).val_auc - fold_auc) < SAME_AUC


def stage_one_run(description: RunDescription) -> Path | None:
    """The run folder whose model a run started from (its recipe's `init_weights`), if it started from one."""
    init = description.config.get("init_weights")
    return Path(init).parent if init else None


def training_of(sweep_dir: Path, report: dict[str, Any], runs: Path) -> Training | None:
    if "members" in report or "window_centres" in report:  # scored other sweeps' fold models
        return None
    seconds: dict[str, float] = {}  # by fold folder: folds that share one model count its training once
    counted = 0
    stage_one: Path | None = None
    for fold in report["folds"]:
        fold_runs = runs / f"logo-{sweep_dir.name}"
        if "train_seconds" in fold:
            seconds[fold["run"]] = fold["train_seconds"]
            counted += 1
            if (fold_runs / fold["run"] / "config.json").is_file():
                stage_one = stage_one or stage_one_run(read_description(fold_runs / fold["run"]))
            continue
        run_dir = fold_runs / fold["held_out"]
        if not run_dir.is_dir():
            run_dir = fold_runs / SHARED_FOLD
        if holds_this_sweep(run_dir, report, fold):
            seconds[run_dir.name] = training_seconds(read_epochs(run_dir))
            counted += 1
            stage_one = stage_one or stage_one_run(read_description(run_dir))
    return Training(sum(seconds.values()) / 60, counted, len(report["folds"]), stage_one)


def minutes_cell(training: Training | None) -> str:
    if training is None:
        return "nothing trained"
    if training.folds_counted == 0:
        return "—"
    partial = (
        "" if training.folds_counted == training.folds else f" ({training.folds_counted} of {training.folds} folds)"
    )
    return f"{training.minutes:.1f}{partial}"


def started_from(run: Path | None) -> str:
    """The run a recipe's model started from (`init_weights`), and its training minutes where its files are here."""
    if run is None:
        return ""
    if not (run / "metrics.jsonl").is_file():
        return f"`{run.parent.name}/{run.name}`, —"
    return f"`{run.parent.name}/{run.name}`, {training_seconds(read_epochs(run)) / 60:.1f} min"


def figures(report: dict[str, Any], condition: str) -> str:
    summary = report["summary"][condition]
    return f"{summary['mean_auc']:.3f} / {summary['worst_auc']:.3f}"


def candidate_rows(reports: Path) -> list[str]:
    """The models trained on every source (`docs/logo/generalise-v*/`, the files a full run keeps): the ones a
    shipped model was picked from, each with its test figures and training minutes."""
    rows = []
    for run in sorted(path.parent for path in reports.glob("*/report.json")):
        report = json.loads((run / "report.json").read_text())
        description = read_description(run)
        epochs = read_epochs(run)
        ciplab_file = run / "ciplab-photoshop-report.json"
        ciplab = json.loads(ciplab_file.read_text())["roc_auc"] if ciplab_file.is_file() else None
        rows.append(
            f"| `{run.name}` | `{report['model']}` | `{Path(description.split_file).name}` | {len(epochs)} | "
            f"{report['roc_auc']:.4f} | {report['recall']:.3f} | {report['false_positive_rate']:.3f} | "
            f"{report['ece']:.3f} | {'—' if ciplab is None else f'{ciplab:.3f}'} | "
            f"{training_seconds(epochs) / 60:.1f} | {started_from(stage_one_run(description))} |"
        )
    return rows


def ledger(reports: Path, runs: Path) -> str:
    sweeps = sorted(path.parent for path in reports.rglob("logo.json"))
    lines = [
        "# Every leave-one-generator-out sweep",
        "",
        "_Generated by `python -m scripts.logo_ledger` from each sweep's `logo.json` and, for the training minutes, "
        "the fold runs' `metrics.jsonl` (see the script's docstring for when a run counts). AUC: mean / worst fold; "
        "web: the JPEG q75 web-sized copies; recall: mean over folds at the fold's threshold (web); ciplab: the "
        "Photoshop composites never trained on, mean over fold models (web). Minutes on the 2 CPU cores as the runs "
        "recorded them (a run that shared the cores with another took longer); they need the `runs/` folders, which "
        "stay on the machine that trained them, so regenerate this page there. Recipes are ranked on two seeds "
        "(`python -m scripts.logo_compare`); `docs/generalisation.md` tells what each one tried and what it showed._",
    ]
    for protocol, in_protocol in (
        (FIRST_PROTOCOL, [s for s in sweeps if s.parent == reports]),
        (REALS_KEPT, [s for s in sweeps if s.parent != reports]),
    ):
        lines += [
            "",
            f"## Folds: {protocol}",
            "",
            "| sweep | recipe | seed | split | how | stored AUC | web AUC | web recall | ciplab | training min | "
            "starts from (training) |",
            "|---|---|---:|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for sweep_dir in in_protocol:
            report = json.loads((sweep_dir / "logo.json").read_text())
            training = training_of(sweep_dir, report, runs)
            web = report["summary"]["web"]
            ciplab = web.get("cross_dataset_mean_auc")
            ciplab_cell = "—" if ciplab is None else f"{ciplab:.3f}"
            lines.append(
                f"| `{sweep_dir.relative_to(reports)}` | `{report['recipe']}` | {report.get('seed') or '—'} | "
                f"`{Path(report['split_file']).name}` | {how_made(report)} | {figures(report, 'stored')} | "
                f"{figures(report, 'web')} | {web['mean_recall']:.3f} | "
                f"{ciplab_cell} | {minutes_cell(training)} | "
                f"{started_from(training.stage_one if training else None)} |"
            )
    lines += [
        "",
        "## Candidates trained on every source (test split; the shipped model was picked from these)",
        "",
        "| run | model | split | epochs | test AUC | recall | FPR | ECE | ciplab AUC | training min | "
        "starts from (training) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *candidate_rows(reports),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=Path("docs/logo"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/logo/LEDGER.md"))
    args = parser.parse_args()
    args.out.write_text(ledger(args.reports, args.runs))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
