"""The ledger of every leave-one-generator-out sweep (`scripts/logo_ledger.py`): figures from each `logo.json`, and
training minutes only from the fold runs that are the ones the sweep scored."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.logo_ledger import ledger

SPLIT = "data/splits/faces-v2/split-taef2-200.csv"


def write_sweep(folder: Path, folds: list[dict[str, object]], **about: object) -> None:
    conditions = {"auc": 0.7, "recall": 0.1}
    summary = {"mean_auc": 0.65, "worst_auc": 0.55, "worst_fold": "gen-b", "mean_recall": 0.08}
    report = {
        "recipe": folder.name,
        "seed": 20,
        "split_file": SPLIT,
        "budget": {"held_out": [f["held_out"] for f in folds], "epochs": 1, "max_train_images": 1600},
        "folds": [{**fold, "conditions": {"stored": conditions, "web": conditions}} for fold in folds],
        "summary": {"stored": summary, "web": {**summary, "cross_dataset_mean_auc": 0.51}},
        **about,
    }
    folder.mkdir(parents=True)
    (folder / "logo.json").write_text(json.dumps(report))


def write_run(run: Path, val_auc: float, seconds: float, seed: int = 20) -> None:
    run.mkdir(parents=True)
    description = {
        "config": {"seed": seed},
        "split_file": SPLIT,
        "split_sha256": "0" * 64,
        "device": "cpu",
        "package_version": "0.0.0",
        "git_commit": None,
    }
    (run / "config.json").write_text(json.dumps(description))
    epoch = {"epoch": 1, "train_loss": 0.3, "train_accuracy": 0.8, "val_loss": 0.4, "val_auc": val_auc}
    epoch |= {"val_accuracy": 0.8, "lr": 2e-4, "seconds": seconds}
    (run / "metrics.jsonl").write_text(json.dumps(epoch) + "\n")


def row_of(text: str, sweep: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| `{sweep}`"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_training_minutes_count_only_the_runs_the_sweep_scored(tmp_path: Path) -> None:
    reports, runs = tmp_path / "docs" / "logo", tmp_path / "runs"
    write_sweep(
        reports / "reals-kept" / "toy", [{"held_out": "gen-a", "val_auc": 0.81}, {"held_out": "gen-b", "val_auc": 0.82}]
    )
    write_run(runs / "logo-toy" / "gen-a", val_auc=0.81, seconds=120)
    write_run(runs / "logo-toy" / "gen-b", val_auc=0.90, seconds=600)  # a later sweep of the same name: not this one
    row = row_of(ledger(reports, runs), "reals-kept/toy")
    assert row[5:9] == ["0.650 / 0.550", "0.650 / 0.550", "0.080", "0.510"]
    assert row[9] == "2.0 (1 of 2 folds)"


def test_a_model_shared_by_every_fold_counts_once_and_recorded_times_win(tmp_path: Path) -> None:
    reports, runs = tmp_path / "docs" / "logo", tmp_path / "runs"
    write_sweep(
        reports / "reals-kept" / "shared",
        [{"held_out": "gen-a", "val_auc": 0.0}, {"held_out": "gen-b", "val_auc": 0.0}],
    )
    write_run(runs / "logo-shared" / "recipe-holds-all-out", val_auc=0.0, seconds=300)
    recorded = [{"held_out": name, "val_auc": 0.8, "run": "recipe-holds-all-out", "train_seconds": 90} for name in "ab"]
    write_sweep(reports / "reals-kept" / "recorded", recorded)
    text = ledger(reports, runs)
    assert row_of(text, "reals-kept/shared")[9] == "5.0"
    assert row_of(text, "reals-kept/recorded")[9] == "1.5"


def test_an_ensemble_trained_nothing_and_an_unknown_run_says_so(tmp_path: Path) -> None:
    reports, runs = tmp_path / "docs" / "logo", tmp_path / "runs"
    write_sweep(reports / "first", [{"held_out": "gen-a", "val_auc": 0.8}])
    write_sweep(reports / "reals-kept" / "both", [{"held_out": "gen-a"}], members=["first", "other"], combine="largest")
    text = ledger(reports, runs)
    assert row_of(text, "first")[9] == "—"  # no run folder left: no figure made up
    assert "nothing trained" in row_of(text, "reals-kept/both")[4]
    assert row_of(text, "reals-kept/both")[9] == "nothing trained"
    assert text.index("`first`") < text.index("## Folds: a fold leaves out the generator's fakes")
