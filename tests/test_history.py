from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detecteur.cli import app
from detecteur.config import LOGO_RUNS_PREFIX
from detecteur.training.calibrate import save_calibrated_model
from detecteur.training.card import ship
from detecteur.training.evaluate import evaluate_run
from detecteur.training.history import HISTORY_FIGURE, HISTORY_MARKDOWN, HISTORY_RECORD, RunSummary, write_history
from detecteur.training.metrics import compute_metrics


def _started_at(run_dir: Path, timestamp: float) -> None:
    os.utime(run_dir / "config.json", (timestamp, timestamp))


@pytest.fixture(scope="module")
def runs_and_models(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three finished runs — one evaluated and released, one nested (an ablation cell), one only trained — and
    one started that never finished an epoch."""
    runs = tmp_path_factory.mktemp("history") / "runs"
    released = runs / "released"
    shutil.copytree(toy_run, released)
    save_calibrated_model(released, evaluate_run(released))
    models = runs.parent / "models"
    ship(released, models, "9.9.9")
    cell = runs / "ablation" / "cell-seed0"
    shutil.copytree(toy_run, cell, ignore=shutil.ignore_patterns("report", "model.safetensors"))
    trained_only = runs / "trained-only"
    shutil.copytree(cell, trained_only)
    metrics = [json.loads(line) for line in (trained_only / "metrics.jsonl").read_text().splitlines()]
    # On the epoch history reports (the best one: on a fast CPU the toy run may reach its best AUC before the last).
    best = max(range(len(metrics)), key=lambda index: metrics[index]["val_auc"])
    metrics[best]["val_auc_by_source"] = {"stylegan-ffhq": 0.5, "lfw-faceswap": 0.75}
    (trained_only / "metrics.jsonl").write_text("".join(json.dumps(epoch) + "\n" for epoch in metrics))
    unfinished = runs / "unfinished"
    unfinished.mkdir()
    shutil.copyfile(toy_run / "config.json", unfinished / "config.json")
    (unfinished / "metrics.jsonl").write_text("")
    for order, run in enumerate((trained_only, released, cell, unfinished)):
        _started_at(run, 1_700_000_000 + order)
    return runs, models


def test_history_lists_every_finished_run_in_the_order_started_with_its_own_figures(
    runs_and_models: tuple[Path, Path], tmp_path: Path
) -> None:
    runs, models = runs_and_models
    summaries = write_history(runs, tmp_path, models, recipes_dir=tmp_path / "no-recipes")
    assert [s.name for s in summaries] == ["trained-only", "released", "ablation/cell-seed0"]
    released = summaries[1]
    report = json.loads((runs / "released" / "report" / "report.json").read_text())
    epochs = [json.loads(line) for line in (runs / "released" / "metrics.jsonl").read_text().splitlines()]
    assert released.best_val_auc == max(epoch["val_auc"] for epoch in epochs)
    assert released.minutes == pytest.approx(sum(epoch["seconds"] for epoch in epochs) / 60)
    assert released.shipped_as == "9.9.9"
    assert summaries[0].shipped_as is None and summaries[0].test is None
    assert summaries[0].best_val_auc_by_source == {"stylegan-ffhq": 0.5, "lfw-faceswap": 0.75}

    table = (tmp_path / HISTORY_MARKDOWN).read_text()
    row = next(line for line in table.splitlines() if line.startswith("| `released` |"))
    assert f"| {report['roc_auc']:.4f} | {report['accuracy']:.4f} |" in row
    assert row.endswith("| **9.9.9** |")
    assert "| `ablation/cell-seed0` |" in table
    assert "unfinished" not in table
    assert "3 runs" in table
    assert (tmp_path / HISTORY_FIGURE).stat().st_size > 10_000


def test_history_links_a_run_to_the_recipe_of_its_name(runs_and_models: tuple[Path, Path], tmp_path: Path) -> None:
    runs, models = runs_and_models
    recipes = tmp_path / "configs"
    recipes.mkdir()
    (recipes / "released.toml").write_text('arch = "efficientnet_lite0"\n')
    summaries = write_history(runs, tmp_path / "out", models, recipes)
    assert {s.name: s.recipe for s in summaries}["released"] == (recipes / "released.toml").as_posix()
    assert {s.name: s.recipe for s in summaries}["trained-only"] is None


def test_history_command_refuses_a_missing_folder_by_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["history", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nowhere is not a folder of runs" in result.output
    assert not (tmp_path / HISTORY_MARKDOWN).exists()


def test_an_evaluated_ensemble_is_listed_as_made_of_its_members(
    runs_and_models: tuple[Path, Path], tmp_path: Path
) -> None:
    runs, models = runs_and_models
    combined = tmp_path / "runs" / "combined"
    shutil.copytree(runs, tmp_path / "runs", dirs_exist_ok=True)
    combined.mkdir()
    # A report as `evaluate` writes it: the headline metrics, then the validation figures history reads.
    headline = compute_metrics([0, 1, 0, 1], [0.2, 0.8, 0.6, 0.4], threshold=0.5) | {"roc_auc": 0.75}
    validation = {"roc_auc": 0.875, "roc_auc_by_source": {"stylegan-ffhq": 0.625}}
    report = {"dataset": "split.csv (test split)", "model": "0+combined", **headline, "validation": validation}
    description = json.loads((runs / "released" / "config.json").read_text())
    (combined / "config.json").write_text(
        json.dumps(description | {"ensemble": [str(runs / "released"), str(runs / "trained-only")]})
    )
    (combined / "best.safetensors").write_bytes(b"")
    _started_at(combined, 1_800_000_000)
    assert "combined" not in [s.name for s in write_history(tmp_path / "runs", tmp_path / "out", models)]

    (combined / "report").mkdir()
    (combined / "report" / "report.json").write_text(json.dumps(report))
    summary = write_history(tmp_path / "runs", tmp_path / "out", models)[-1]
    assert (summary.name, summary.arch, summary.started_from) == ("combined", "ensemble", "released + trained-only")
    assert (summary.best_val_auc, summary.best_val_auc_by_source, summary.epochs_run) == (
        0.875,
        {"stylegan-ffhq": 0.625},
        0,
    )


def test_a_run_whose_folder_is_gone_keeps_its_recorded_row_and_a_release_keeps_its_mark(
    runs_and_models: tuple[Path, Path], tmp_path: Path
) -> None:
    runs, models = runs_and_models
    out = tmp_path / "docs"
    write_history(runs, out, models)
    record = json.loads((out / HISTORY_RECORD).read_text())
    assert [row["name"] for row in record] == ["trained-only", "released", "ablation/cell-seed0"]

    # Later, on another machine: only the released run's folder is there, and models/ holds a newer release.
    later_runs = tmp_path / "later" / "runs"
    shutil.copytree(runs / "released", later_runs / "released")
    summaries = write_history(later_runs, out, tmp_path / "no-models")
    assert [s.name for s in summaries] == ["trained-only", "released", "ablation/cell-seed0"]
    assert summaries[1].shipped_as == "9.9.9"
    assert summaries[0] == RunSummary(**record[0])
    assert "3 runs" in (out / HISTORY_MARKDOWN).read_text()


def test_leave_one_generator_out_fold_runs_are_not_listed(runs_and_models: tuple[Path, Path], tmp_path: Path) -> None:
    runs, models = runs_and_models
    with_sweep = tmp_path / "runs"
    shutil.copytree(runs, with_sweep)
    shutil.copytree(runs / "trained-only", with_sweep / f"{LOGO_RUNS_PREFIX}recipe" / "stylegan-ffhq")
    names = [s.name for s in write_history(with_sweep, tmp_path / "docs", models)]
    assert names == ["trained-only", "released", "ablation/cell-seed0"]


def test_history_command_refuses_a_damaged_record_and_leaves_it(
    runs_and_models: tuple[Path, Path], tmp_path: Path
) -> None:
    runs, models = runs_and_models
    (tmp_path / HISTORY_RECORD).write_text('[{"name": "a run of another shape"}]')
    result = CliRunner().invoke(app, ["history", str(runs), "--out", str(tmp_path), "--models", str(models)])
    assert result.exit_code == 2
    assert "is not a run history record" in result.output
    assert (tmp_path / HISTORY_RECORD).read_text() == '[{"name": "a run of another shape"}]'
    assert not (tmp_path / HISTORY_MARKDOWN).exists()
