"""`detecteur history`: every training run in a folder, in one table and one figure, read from the runs' files.

A run directory is any folder holding `config.json` and `metrics.jsonl` (what `detecteur train` writes); an
evaluated one also holds `report/report.json`. Runs are listed in the order they were started (the
modification time of `config.json`, written once when a run starts). An ensemble (`detecteur ensemble`)
trained nothing itself: it is listed once evaluated, as started from its members, with its evaluation's
validation figures. A run whose calibrated weights are those of a file in `models/` is marked with that file's
version, so the table shows which run became which release.

Run folders are not committed, so every summary is also kept in `run_history.json` beside the table, and the next
`detecteur history` starts from it: a run found again is summarised afresh (keeping its release mark, since
`models/` holds only the served file), a run no longer on this machine keeps its recorded row. A leave-one-
generator-out sweep's fold runs (`runs/logo-<recipe>/<fold>/`) are left out: their figures are the sweep's results
(`docs/logo/`), and each is a short run on a fold budget, not a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from detecteur.config import (
    ENSEMBLE,
    LOGO_RUNS_PREFIX,
    RUN_BEST_MODEL_FILE,
    RUN_CALIBRATED_MODEL_FILE,
    RUN_CONFIG_FILE,
    RUN_METRICS_FILE,
)
from detecteur.files import atomic_write_text
from detecteur.model.networks import ModelFileError, read_metadata
from detecteur.training.plots import DPI
from detecteur.training.runs import (
    best_epoch,
    read_description,
    read_epochs,
    read_report_if_any,
    training_seconds,
)

# The sources whose validation and test AUC get columns of their own: the two in-distribution sets with both
# classes (the others hold one class only, so they have no AUC of their own).
SOURCES_WITH_AUC = ("stylegan-ffhq", "lfw-faceswap")
HISTORY_MARKDOWN = "run_history.md"
HISTORY_FIGURE = "run_history.png"
HISTORY_RECORD = "run_history.json"
# The test figures a row shows, kept from a run's report.
TEST_FIGURES = ("roc_auc", "accuracy", "precision", "recall")


@dataclass(frozen=True)
class RunSummary:
    name: str
    split_file: str | None
    recipe: str | None
    arch: str
    in_chans: int
    started_from: str
    train_images: int | None
    epochs_run: int
    epochs_planned: int
    minutes: float
    images_per_second: float | None
    best_epoch: int
    best_val_auc: float
    best_val_auc_by_source: dict[str, float]
    # TEST_FIGURES and {"per_source": {source: {"roc_auc": ...}}} of the evaluated run's test report.
    test: dict[str, Any] | None
    shipped_as: str | None


def _is_logo_fold(run_dir: Path, runs_dir: Path) -> bool:
    return run_dir.relative_to(runs_dir).parts[0].startswith(LOGO_RUNS_PREFIX)


def find_runs(runs_dir: Path) -> list[Path]:
    """Run directories under `runs_dir` (nested ones too, e.g. an ablation's cells, but no leave-one-generator-out
    fold), oldest first."""
    found = [
        config.parent
        for config in runs_dir.rglob(RUN_CONFIG_FILE)
        if ((config.parent / RUN_METRICS_FILE).is_file() or (config.parent / RUN_BEST_MODEL_FILE).is_file())
        and not _is_logo_fold(config.parent, runs_dir)
    ]
    return sorted(found, key=lambda run: ((run / RUN_CONFIG_FILE).stat().st_mtime, str(run)))


def shipped_versions(models_dir: Path) -> dict[str, str]:
    """{weights sha256: version} of every model file in `models_dir`."""
    versions = {}
    for model_file in sorted(models_dir.glob("*.safetensors")):
        try:
            metadata = read_metadata(model_file)
        except ModelFileError:
            continue
        if metadata.weights_sha256:
            versions[metadata.weights_sha256] = metadata.version
    return versions


def _started_from(config: dict[str, Any]) -> str:
    if init := config.get("init_weights"):
        return Path(init).name if Path(init).parts[:1] == ("models",) else str(init)
    if config.get("pretrained") and str(config["arch"]).startswith("efficientnet"):
        return "ImageNet"
    return "random weights"


def summarise_run(run_dir: Path, runs_dir: Path, releases: dict[str, str], recipes_dir: Path) -> RunSummary | None:
    """One run's row, or None for a run that has not finished an epoch (or an ensemble not yet evaluated)."""
    description = read_description(run_dir)
    config = description.config
    report = read_report_if_any(run_dir)
    test = _test_figures(report.model_dump(exclude_unset=True)) if report is not None else None
    epochs = read_epochs(run_dir)
    ensemble = description.is_ensemble
    if ensemble:
        if report is None:
            return None
        # Trained nothing itself: its figures are those of the evaluation, at epoch 0.
        validation = report.validation
        best_epoch_number, best_val_auc = 0, float(validation["roc_auc"])
        best_by_source = validation.get("roc_auc_by_source", {})
    elif epochs:
        best = best_epoch(epochs)
        best_epoch_number, best_val_auc, best_by_source = best.epoch, best.val_auc, best.val_auc_by_source
    else:
        return None
    shipped_as = None
    calibrated = run_dir / RUN_CALIBRATED_MODEL_FILE
    if calibrated.is_file():
        try:
            shipped_as = releases.get(read_metadata(calibrated).weights_sha256 or "")
        except ModelFileError:
            shipped_as = None
    recipe = recipes_dir / f"{run_dir.name}.toml"
    speeds = [epoch.images_per_second for epoch in epochs if epoch.images_per_second]
    train_summary = description.data_summary.get("train")
    return RunSummary(
        name=run_dir.relative_to(runs_dir).as_posix(),
        split_file=description.split_file,
        recipe=recipe.as_posix() if recipe.is_file() else None,
        arch=ENSEMBLE if ensemble else config["arch"],
        in_chans=int(config["in_chans"]),
        started_from=(
            " + ".join(member.name for member in description.member_runs) if ensemble else _started_from(config)
        ),
        train_images=sum(train_summary.values()) if isinstance(train_summary, dict) else None,
        epochs_run=len(epochs),
        epochs_planned=len(epochs) if ensemble else int(config["epochs"]),
        minutes=training_seconds(epochs) / 60,
        images_per_second=sum(speeds) / len(speeds) if speeds else None,
        best_epoch=best_epoch_number,
        best_val_auc=best_val_auc,
        best_val_auc_by_source={k: float(v) for k, v in best_by_source.items() if v is not None},
        test=test,
        shipped_as=shipped_as,
    )


def _test_figures(report: dict[str, Any]) -> dict[str, Any]:
    per_source = report.get("per_source", {})
    return {name: report.get(name) for name in TEST_FIGURES} | {
        "per_source": {source: {"roc_auc": per_source.get(source, {}).get("roc_auc")} for source in SOURCES_WITH_AUC}
    }


def read_record(path: Path) -> list[RunSummary]:
    """The summaries an earlier `write_history` kept (none when there is no record yet)."""
    if not path.is_file():
        return []
    try:
        return [RunSummary(**row) for row in json.loads(path.read_text())]
    except (TypeError, ValueError) as error:  # not JSON, or rows of another shape
        raise ValueError(f"{path} is not a run history record ({error}); move it away to start a new one") from error


def merge(recorded: list[RunSummary], found: list[RunSummary]) -> list[RunSummary]:
    """The recorded rows in their order, each replaced by its run's fresh summary where the run was found again
    (its release mark kept if `models/` no longer holds that release), then the runs new to the record."""
    fresh = {summary.name: summary for summary in found}
    merged = []
    for old in recorded:
        new = fresh.pop(old.name, None)
        if new is None:
            merged.append(old)
        else:
            merged.append(new if new.shipped_as or not old.shipped_as else replace(new, shipped_as=old.shipped_as))
    return merged + list(fresh.values())


def _figure(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _split_name(split_file: str | None) -> str:
    """`data/splits/faces-v1/split.csv` → `faces-v1`: split files live in a folder named after their data."""
    return "—" if split_file is None else Path(split_file).parent.name or split_file


def _test_by_source(summary: RunSummary, source: str) -> float | None:
    if summary.test is None:
        return None
    value = summary.test.get("per_source", {}).get(source, {}).get("roc_auc")
    return None if value is None else float(value)


def markdown(summaries: list[RunSummary], runs_dir: Path) -> str:
    source_columns = " | ".join(f"val {source}" for source in SOURCES_WITH_AUC)
    test_source_columns = " | ".join(f"test {source}" for source in SOURCES_WITH_AUC)
    lines = [
        "# Training runs",
        "",
        f"Generated by `detecteur history {runs_dir.as_posix()}` from each run's `config.json`, `metrics.jsonl` and,",
        "once evaluated, `report/report.json`; nothing here is typed in. Validation figures are at the run's best",
        "epoch (by validation AUC, the figure models are chosen by). Test figures exist for evaluated runs only, at",
        "the threshold calibrated on validation. *Released* names the model file whose weights are this run's.",
        "Run folders are not committed: every row is also kept in `run_history.json`, and a run whose folder is not",
        "on the machine that regenerates this page keeps its recorded row. A run with a recipe is reproduced by",
        "`detecteur train --config` with it. Leave-one-generator-out fold runs are not listed: their figures are",
        "the sweeps' results (`docs/logo/`, `docs/generalisation.md`).",
        "",
        f"![Best validation AUC of every run]({HISTORY_FIGURE})",
        "",
        "| run | split | recipe | model | started from | epochs | wall time | img/s | best val AUC (epoch) "
        f"| {source_columns} "
        f"| test AUC | test acc | test precision | test recall | {test_source_columns} | released |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in SOURCES_WITH_AUC)
        + " | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in SOURCES_WITH_AUC)
        + " | --- |",
    ]
    for summary in summaries:
        test = summary.test or {}
        hours, minutes = divmod(round(summary.minutes), 60)
        trained = summary.arch != ENSEMBLE  # an ensemble's training time is its members'
        epochs = f"{summary.epochs_run}/{summary.epochs_planned}" if trained else "—"
        images = f" on {summary.train_images}" if summary.train_images and trained else ""
        cells = [
            f"`{summary.name}`",
            _split_name(summary.split_file),
            f"`{summary.recipe}`" if summary.recipe else "—",
            f"{summary.arch} {summary.in_chans}ch",
            summary.started_from,
            f"{epochs}{images}",
            f"{hours}:{minutes:02d}" if trained else "—",
            _figure(summary.images_per_second, 1),
            f"{summary.best_val_auc:.4f} ({summary.best_epoch if trained else 'members averaged'})",
            *(_figure(summary.best_val_auc_by_source.get(source), 3) for source in SOURCES_WITH_AUC),
            _figure(test.get("roc_auc")),
            _figure(test.get("accuracy")),
            _figure(test.get("precision")),
            _figure(test.get("recall")),
            *(_figure(_test_by_source(summary, source), 3) for source in SOURCES_WITH_AUC),
            f"**{summary.shipped_as}**" if summary.shipped_as else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    total_hours = sum(summary.minutes for summary in summaries) / 60
    lines += ["", f"{len(summaries)} runs, {total_hours:.1f} hours of training in all.", ""]
    return "\n".join(lines)


def draw(summaries: list[RunSummary], path: Path) -> Path:
    """Best validation AUC of the top-level runs on the most used split (so every point is comparable), overall
    above and per two-class source below, in run order; released runs are labelled with their version. Nested
    runs (an ablation's short cells) and runs on other splits are left to the table."""
    top_level = [summary for summary in summaries if "/" not in summary.name] or summaries
    splits = [summary.split_file for summary in top_level]
    split = max(set(splits), key=splits.count)
    plotted = [summary for summary in top_level if summary.split_file == split]
    positions = list(range(len(plotted)))
    figure, (overall, by_source) = plt.subplots(
        2, 1, sharex=True, figsize=(max(6.0, 0.5 * len(plotted) + 2), 6.5), dpi=DPI
    )
    overall.plot(positions, [s.best_val_auc for s in plotted], "o", color="tab:blue")
    for position, summary in zip(positions, plotted, strict=True):
        if summary.shipped_as:
            overall.annotate(
                summary.shipped_as,
                (position, summary.best_val_auc),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
                fontweight="bold",
            )
    overall.margins(y=0.2)
    overall.set_ylabel("validation AUC, all sources")
    overall.set_title(f"Best validation AUC of every run on {split}, in the order started")
    for source, marker in zip(SOURCES_WITH_AUC, ("s", "^", "D"), strict=False):
        points = [
            (position, summary.best_val_auc_by_source[source])
            for position, summary in enumerate(plotted)
            if source in summary.best_val_auc_by_source
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            by_source.plot(xs, ys, marker, linestyle="none", label=source)
    by_source.set_ylabel("validation AUC, per source")
    if by_source.get_legend_handles_labels()[0]:
        by_source.legend(fontsize=8, loc="lower left")
    by_source.set_xticks(positions, [s.name for s in plotted], rotation=60, ha="right", fontsize=8)
    for axis in (overall, by_source):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_history(
    runs_dir: Path, out_dir: Path, models_dir: Path = Path("models"), recipes_dir: Path = Path("configs")
) -> list[RunSummary]:
    """Write `out_dir/run_history.md`, `.png` and `.json`: the runs recorded there before, updated with those found
    in `runs_dir` (see `merge`); returns the rows."""
    releases = shipped_versions(models_dir)
    found = [
        summary
        for run in find_runs(runs_dir)
        if (summary := summarise_run(run, runs_dir, releases, recipes_dir)) is not None
    ]
    summaries = merge(read_record(out_dir / HISTORY_RECORD), found)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / HISTORY_RECORD, json.dumps([asdict(s) for s in summaries], indent=1) + "\n")
    atomic_write_text(out_dir / HISTORY_MARKDOWN, markdown(summaries, runs_dir))
    if summaries:
        draw(summaries, out_dir / HISTORY_FIGURE)
    return summaries
