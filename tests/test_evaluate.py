from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from detecteur.config import RUN_CALIBRATED_MODEL_FILE
from detecteur.model.networks import read_metadata
from detecteur.training.calibrate import save_calibrated_model
from detecteur.training.evaluate import PERTURBATIONS, evaluate_folder, evaluate_run, utkface_groups

FIGURES = (
    "roc.png",
    "precision_recall.png",
    "reliability.png",
    "confusion_matrix.png",
    "training_curves.png",
)


@pytest.fixture(scope="module")
def run_report(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    (toy_run / RUN_CALIBRATED_MODEL_FILE).unlink(missing_ok=True)
    evaluation = evaluate_run(toy_run, out_dir=tmp_path_factory.mktemp("report"), robustness=True)
    # Evaluating writes the report only; the calibrated model file is its own step.
    assert not (toy_run / RUN_CALIBRATED_MODEL_FILE).exists()
    save_calibrated_model(toy_run, evaluation)
    return evaluation.report


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


def test_robustness_scores_the_test_split_under_each_degradation(run_report: dict[str, object]) -> None:
    robustness = run_report["robustness"]
    assert isinstance(robustness, dict)
    assert set(robustness) == set(PERTURBATIONS)
    # The toy task lives in the finest pixel pattern: blur and heavy JPEG must hurt it, mild JPEG less so.
    assert robustness["gaussian_blur_sigma1"]["auc_drop"] > 0.1
    assert robustness["jpeg_q90"]["auc_drop"] < robustness["jpeg_q50"]["auc_drop"] + 1e-9
    report_md = (Path(str(run_report["report_dir"])) / "report.md").read_text()
    assert "## Robustness" in report_md and "| jpeg_q75 |" in report_md


@pytest.mark.parametrize(
    ("name", "groups"),
    [
        ("10_0_0_20170103233459275.jpg.chip.jpg", ["age 0-17", "male", "White"]),
        ("45_1_3_20170119.jpg.chip.jpg", ["age 40-59", "female", "Indian"]),
        ("72_1_1_2017.jpg", ["age 60+", "female", "Black"]),
        ("61_3_2_20170109.jpg", []),
        ("real_1.jpg", []),
    ],
)
def test_utkface_groups_come_from_the_file_name(name: str, groups: list[str]) -> None:
    assert utkface_groups(Path(name)) == groups
