"""The run folder: what `detecteur train` and `detecteur ensemble` write, and every later step reads.

    <run>/config.json          `RunDescription`: the recipe, the split, the machine; written when the run starts
    <run>/metrics.jsonl        one `EpochRecord` per finished epoch (an ensemble trains nothing and has none)
    <run>/checkpoint.pt        the state a killed run resumes from (train.py's own)
    <run>/best.safetensors     the best epoch's model, uncalibrated
    <run>/model.safetensors    the same weights calibrated (calibrate.py)
    <run>/report/report.json   `Report`: the test split's figures (evaluate.py)

Each file is read and written here, typed, and nowhere else. Reading keeps what a file holds and no more: a field an
older run did not record stays absent when the file is written back, so rewriting a run's files changes no byte.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from detecteur import __version__
from detecteur.config import LABEL_NAMES, RUN_CONFIG_FILE, RUN_METRICS_FILE, TrainConfig
from detecteur.files import atomic_write_text
from detecteur.inputs.preprocess import InputSpec
from detecteur.model.file import ModelMetadata

REPORT_DIR = "report"
REPORT_FILE = "report.json"


class RunError(RuntimeError):
    """A run directory that cannot be started or resumed as asked."""


class RunRecord(BaseModel):
    # Fields a later version adds are kept when an older reader rewrites the file.
    model_config = ConfigDict(extra="allow")

    def to_json(self, indent: int | None = None) -> str:
        # Python mode, then the standard library's encoder: numbers come back exactly as they were written (a NaN
        # loss too), in the field order below.
        return json.dumps(self.model_dump(exclude_unset=True), indent=indent)


class RunDescription(RunRecord):
    """`config.json`: how a run was started. An ensemble's names its member runs and their architectures, and
    carries its first member's recipe (evaluation reads batch size, workers and class weights from it)."""

    config: dict[str, Any]
    ensemble: list[str] | None = None
    members: list[str] | None = None
    split_file: str
    split_sha256: str
    device: str
    data_summary: dict[str, Any] = {}
    package_version: str
    git_commit: str | None
    processes: int = 1

    @property
    def is_ensemble(self) -> bool:
        return self.ensemble is not None

    @property
    def member_runs(self) -> list[Path]:
        return [Path(member) for member in self.ensemble or []]

    @property
    def recipe(self) -> TrainConfig:
        return TrainConfig.model_validate(self.config)


class EpochRecord(RunRecord):
    """One line of `metrics.jsonl`: a finished epoch's training and validation figures."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_auc: float
    val_accuracy: float
    # AUC per validation source that holds both classes (runs before it was recorded have none).
    val_auc_by_source: dict[str, float] = {}
    lr: float
    seconds: float
    images_per_second: float | None = None


class Calibration(RunRecord):
    logit_adjustment: list[float]
    temperature: float
    ece_before: float
    ece_after: float
    val_ece_before: float
    val_ece_after: float


class Report(RunRecord):
    """`report.json`: the headline metrics of `metrics.compute_metrics` on the test split (or on a folder of
    images), then the sections a run's evaluation adds."""

    dataset: str
    model: str
    n: int
    n_authentic: int
    n_synthetic: int
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    average_precision: float | None
    eer: float | None
    ece: float
    false_positive_rate: float | None
    confusion_matrix: list[list[int]]
    validation: dict[str, Any] = {}
    calibration: Calibration | None = None
    per_source: dict[str, dict[str, Any]] = {}
    hardest_errors: list[dict[str, Any]] = []
    figures: list[str] = []
    report_dir: str | None = None
    fairness_utkface: dict[str, dict[str, Any]] | None = None
    robustness: dict[str, dict[str, Any]] | None = None


def current_git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def model_version(run_dir: Path) -> str:
    """The version a run's model files carry until `detecteur ship` names the release."""
    return f"{__version__}+{run_dir.name}"


def created_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def describe_run(
    config: dict[str, Any],
    split_file: Path | str,
    split_sha256: str,
    device: str,
    data_summary: dict[str, Any],
    processes: int,
    **ensemble: Any,
) -> RunDescription:
    """A new run's description, stamped with this package's version and the checkout's commit."""
    return RunDescription(
        config=config,
        **ensemble,
        split_file=str(split_file),
        split_sha256=split_sha256,
        device=device,
        data_summary=data_summary,
        package_version=__version__,
        git_commit=current_git_commit(),
        processes=processes,
    )


def new_model_metadata(run_dir: Path, description: RunDescription, spec: InputSpec, **fields: Any) -> ModelMetadata:
    """The metadata of a model file a run writes (`best.safetensors`): the run's version, its input, its data and
    commit as its description records them, and `fields` (architecture, recipe, validation figures...)."""
    return ModelMetadata(
        version=model_version(run_dir),
        input_size=spec.input_size,
        in_chans=spec.in_chans,
        pixel_signal=spec.pixel_signal,
        mean=spec.mean,
        std=spec.std,
        data_summary=description.data_summary,
        git_commit=description.git_commit,
        created_at=created_now(),
        **fields,
    )


def read_description(run_dir: Path) -> RunDescription:
    return RunDescription.model_validate_json((run_dir / RUN_CONFIG_FILE).read_text())


def write_description(run_dir: Path, description: RunDescription) -> None:
    atomic_write_text(run_dir / RUN_CONFIG_FILE, description.to_json(indent=2) + "\n")


def read_epoch_file(path: Path) -> list[EpochRecord]:
    """The epochs in a `metrics.jsonl` (none when the file is missing)."""
    if not path.is_file():
        return []
    return [EpochRecord.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def read_epochs(run_dir: Path) -> list[EpochRecord]:
    return read_epoch_file(run_dir / RUN_METRICS_FILE)


def write_epochs(run_dir: Path, epochs: list[EpochRecord]) -> None:
    atomic_write_text(run_dir / RUN_METRICS_FILE, "".join(epoch.to_json() + "\n" for epoch in epochs))


def best_epoch(epochs: list[EpochRecord]) -> EpochRecord:
    """The epoch with the best validation AUC (the first of equals): the one `best.safetensors` holds."""
    return max(epochs, key=lambda epoch: epoch.val_auc)


def training_seconds(epochs: list[EpochRecord]) -> float:
    return sum(epoch.seconds for epoch in epochs)


def report_file(run_dir: Path) -> Path:
    return run_dir / REPORT_DIR / REPORT_FILE


def read_report(path: Path) -> Report:
    """A `report.json`: a run's (`report_file(run)`) or a folder evaluation's."""
    return Report.model_validate_json(path.read_text())


def read_report_if_any(run_dir: Path) -> Report | None:
    path = report_file(run_dir)
    return read_report(path) if path.is_file() else None


def report_json(report: Report) -> str:
    return report.to_json(indent=2) + "\n"


# --- report.md: the report's tables, for a reader -----------------------------------------------------------


def _format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool | int | str):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return json.dumps(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _key_value_table(values: dict[str, Any]) -> list[str]:
    lines = ["| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {_format_value(value)} |" for key, value in values.items()]
    return lines


def _confusion_matrix_table(matrix: list[list[int]]) -> list[str]:
    lines = [
        "| true \\ predicted | " + " | ".join(LABEL_NAMES) + " |",
        "| --- | " + " | ".join("---:" for _ in LABEL_NAMES) + " |",
    ]
    lines += [
        f"| {name} | " + " | ".join(str(count) for count in row) + " |"
        for name, row in zip(LABEL_NAMES, matrix, strict=True)
    ]
    return lines


def nested_table(rows: dict[str, dict[str, Any]], first_header: str, columns: Sequence[str] | None = None) -> list[str]:
    """Markdown table, one row per key of `rows`; columns default to every scalar metric that appears
    (the shared threshold excepted — the confusion matrix does not fit in a cell)."""
    if columns is None:
        columns = []
        for metrics in rows.values():
            columns += [
                key for key, value in metrics.items() if _is_scalar(value) and key != "threshold" and key not in columns
            ]
    lines = [
        f"| {first_header} | " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    lines += [
        f"| {name} | " + " | ".join(_format_value(metrics.get(column)) for column in columns) + " |"
        for name, metrics in rows.items()
    ]
    return lines


def _report_markdown(report: dict[str, Any]) -> str:
    lines = ["# Evaluation report", "", "## Metrics", ""]
    lines += _key_value_table({key: value for key, value in report.items() if _is_scalar(value)})
    if "confusion_matrix" in report:
        lines += ["", "## Confusion matrix", "", *_confusion_matrix_table(report["confusion_matrix"])]
    for key, value in report.items():
        if key == "confusion_matrix" or _is_scalar(value):
            continue
        lines += ["", f"## {key.replace('_', ' ').capitalize()}", ""]
        if isinstance(value, dict) and value and all(isinstance(row, dict) for row in value.values()):
            lines += nested_table(value, "source" if key == "per_source" else "")
        elif isinstance(value, dict):
            lines += _key_value_table(value)
        else:
            lines += ["```json", json.dumps(value, indent=2), "```"]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Write `report.json` (`runs.Report`, indent 2) and `report.md` (readable tables) into `directory`; returns
    the report as written.

    `report` holds the headline metrics of `compute_metrics` at its top level; optional sections are rendered
    too: "per_source" ({source: metrics}), "calibration" ({"temperature", "ece_before", "ece_after"}) and any
    other dict or list. Both files are replaced atomically; the directory is created when missing.
    """
    typed = Report.model_validate(report)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / REPORT_FILE, report_json(typed))
    written = typed.model_dump(exclude_unset=True)
    atomic_write_text(directory / "report.md", _report_markdown(written))
    return written
