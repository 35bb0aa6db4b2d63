"""The run folder's files are read and written in one place (`training/runs.py`), typed, and rewriting a run's
files changes no byte — an older run's fields included."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from detecteur.training.runs import (
    EpochRecord,
    Report,
    RunDescription,
    best_epoch,
    read_description,
    read_epochs,
    read_report,
    report_json,
    write_description,
    write_epochs,
)

ROOT = Path(__file__).resolve().parents[1]
# A real run's files, committed with the generalisation results (docs/logo/generalise-v1/).
RECORDED_RUN = ROOT / "docs" / "logo" / "generalise-v1"


def test_a_recorded_run_is_rewritten_byte_for_byte(tmp_path: Path) -> None:
    write_description(tmp_path, read_description(RECORDED_RUN))
    write_epochs(tmp_path, read_epochs(RECORDED_RUN))
    for name in ("config.json", "metrics.jsonl"):
        assert (tmp_path / name).read_bytes() == (RECORDED_RUN / name).read_bytes()


@pytest.mark.parametrize("path", [RECORDED_RUN / "report.json", ROOT / "models" / "figures" / "report.json"])
def test_a_recorded_report_is_rewritten_byte_for_byte(path: Path) -> None:
    assert report_json(read_report(path)) == path.read_text()


def test_fields_an_older_run_did_not_record_stay_absent_and_unknown_ones_are_kept() -> None:
    line = '{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.7, "val_loss": 0.6, "val_auc": 0.8, '
    line += '"val_accuracy": 0.75, "lr": 0.001, "seconds": 12.5, "later_field": [1, 2]}'
    record = EpochRecord.model_validate_json(line)
    assert record.val_auc_by_source == {} and record.images_per_second is None
    assert record.to_json() == line


def test_the_best_epoch_is_the_first_with_the_highest_validation_auc() -> None:
    def epoch(number: int, auc: float) -> EpochRecord:
        return EpochRecord(
            epoch=number, train_loss=1, train_accuracy=0, val_loss=1, val_auc=auc, val_accuracy=0, lr=1, seconds=1
        )

    assert best_epoch([epoch(1, 0.7), epoch(2, 0.9), epoch(3, 0.9), epoch(4, 0.8)]).epoch == 2


def test_an_ensemble_description_names_its_member_runs() -> None:
    description = read_description(RECORDED_RUN)
    assert not description.is_ensemble and description.member_runs == []
    assert description.recipe.arch == description.config["arch"]
    ensemble = description.model_copy(update={"ensemble": ["runs/a", "runs/b"]})
    assert ensemble.is_ensemble and [run.name for run in ensemble.member_runs] == ["a", "b"]


def test_a_damaged_file_is_a_validation_error_not_a_key_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"config": {}}')
    with pytest.raises(ValidationError):
        read_description(tmp_path)
    with pytest.raises(ValidationError):
        Report.model_validate({"dataset": "d", "model": "m"})
    with pytest.raises(ValidationError):
        RunDescription.model_validate_json("[]")
