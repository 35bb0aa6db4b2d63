from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from detecteur.config import RUN_CALIBRATED_MODEL_FILE
from detecteur.evaluate import evaluate_folder, evaluate_run
from detecteur.model import read_metadata

FIGURES = (
    "roc.png",
    "precision_recall.png",
    "reliability.png",
    "confusion_matrix.png",
    "training_curves.png",
)


@pytest.fixture(scope="module")
def run_report(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return evaluate_run(toy_run, out_dir=tmp_path_factory.mktemp("report"))


def test_evaluation_reports_test_metrics_and_draws_every_plot(run_report: dict[str, object]) -> None:
    report_dir = Path(str(run_report["report_dir"]))
    written = json.loads((report_dir / "report.json").read_text())
    assert written["n"] == 16 and written["roc_auc"] > 0.8
    assert "| roc_auc |" in (report_dir / "report.md").read_text()
    for name in FIGURES:
        with Image.open(report_dir / name) as figure:
            assert figure.size[0] > 200, name


def test_calibration_is_fitted_on_validation_and_stored_in_the_model_file(
    run_report: dict[str, object], toy_run: Path
) -> None:
    metadata = read_metadata(toy_run / RUN_CALIBRATED_MODEL_FILE)
    calibration = run_report["calibration"]
    assert isinstance(calibration, dict)
    assert metadata.temperature == calibration["temperature"] != 1.0
    assert metadata.logit_adjustment == pytest.approx((0.0, math.log(5.0)))
    assert metadata.threshold == run_report["threshold"]
    assert metadata.metrics["test"]["roc_auc"] == run_report["roc_auc"]
    low, high = metadata.borderline_band
    assert low <= metadata.threshold <= high


def test_any_real_fake_folder_can_be_evaluated_with_a_shipped_model(
    run_report: dict[str, object], toy_run: Path, toy_root: Path, tmp_path: Path
) -> None:
    report = evaluate_folder(toy_run / RUN_CALIBRATED_MODEL_FILE, toy_root, out_dir=tmp_path)
    assert report["n"] == 160
    assert report["threshold"] == read_metadata(toy_run / RUN_CALIBRATED_MODEL_FILE).threshold
    assert (tmp_path / "report.json").is_file() and (tmp_path / "roc.png").is_file()
