from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from detecteur.model.networks import ModelFileError, load_model, read_metadata, save_model
from detecteur.training.calibrate import save_calibrated_model
from detecteur.training.card import _threshold_rule, ship, split_file_of_card
from detecteur.training.evaluate import evaluate_run
from detecteur.training.train import train
from tests.conftest import toy_config


@pytest.fixture(scope="module")
def shipped(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    save_calibrated_model(toy_run, evaluate_run(toy_run))
    models_dir = tmp_path_factory.mktemp("models")
    return ship(toy_run, models_dir, "9.9.9"), models_dir


def test_shipping_copies_the_calibrated_model_under_its_versioned_name(shipped: tuple[Path, Path]) -> None:
    model_file, _ = shipped
    assert model_file.name == "detecteur-efficientnet_lite0-9.9.9.safetensors"
    _, metadata = load_model(model_file)
    assert metadata.version == "9.9.9"
    assert metadata.metrics["test"]["n"] == 16
    assert model_file.stat().st_mode & 0o044 == 0o044  # readable by a service user


def test_the_card_quotes_the_runs_own_figures(shipped: tuple[Path, Path]) -> None:
    model_file, models_dir = shipped
    card = (models_dir / "MODEL_CARD.md").read_text()
    report = json.loads((models_dir / "figures" / "report.json").read_text())
    _, metadata = load_model(model_file)
    assert report["roc_auc"] == metadata.metrics["test"]["roc_auc"]
    assert f"| test | {report['accuracy']:.4f} |" in card
    assert f"threshold {metadata.threshold:.4f}" in card
    for figure in ("roc.png", "reliability.png", "training_curves.png", "confusion_matrix.png"):
        assert (models_dir / "figures" / figure).is_file()
        assert f"(figures/{figure})" in card


def test_the_card_says_how_its_threshold_was_chosen(shipped: tuple[Path, Path]) -> None:
    _, models_dir = shipped
    assert (
        "on the calibrated fake probability (Youden's J on the validation split);"
        in (models_dir / "MODEL_CARD.md").read_text()
    )
    capped = _threshold_rule({"calibration": {"max_real_source_fpr": 0.05}})
    assert capped.endswith("no real source has more than 5% of its validation faces called synthetic")


def test_the_split_of_a_card_is_the_one_it_names(shipped: tuple[Path, Path], tmp_path: Path) -> None:
    _, models_dir = shipped
    # The toy run's split is named by its absolute path; the shipped card's is relative to the checkout.
    named = split_file_of_card(models_dir / "MODEL_CARD.md")
    assert named.is_file() and f"Split file `{named}`" in (models_dir / "MODEL_CARD.md").read_text()
    bare = tmp_path / "models" / "MODEL_CARD.md"
    bare.parent.mkdir()
    bare.write_text("# Card\n")
    with pytest.raises(ValueError, match="names no split file"):
        split_file_of_card(bare)


def test_the_card_and_its_shipped_report_name_images_without_this_machines_directories(
    shipped: tuple[Path, Path], toy_run: Path, tmp_path: Path
) -> None:
    # `shipped` has evaluated the toy run, so its report exists to be copied
    run_dir = tmp_path / "run"
    shutil.copytree(toy_run, run_dir)
    report_file = run_dir / "report" / "report.json"
    report = json.loads(report_file.read_text())
    wrong = tmp_path / "home" / "someone" / "faces" / "stylegan-ffhq" / "fake" / "0I7EMNIR50.jpg"
    report["hardest_errors"] = [{"path": str(wrong), "label": "synthetic", "fake_probability": 0.0072}]
    report_file.write_text(json.dumps(report))
    ship(run_dir, tmp_path / "models", "9.9.9")
    card = (tmp_path / "models" / "MODEL_CARD.md").read_text()
    assert "| `stylegan-ffhq/fake/0I7EMNIR50.jpg` | synthetic | 0.0072 |" in card
    assert "someone" not in card
    shipped_report = (tmp_path / "models" / "figures" / "report.json").read_text()
    assert "someone" not in shipped_report and str(tmp_path) not in shipped_report
    shipped_figures = json.loads(shipped_report)["figures"]
    assert shipped_figures and all((tmp_path / "models" / figure).is_file() for figure in shipped_figures)


def _fine_tune(start: Path, toy_split: Path, run_dir: Path) -> Path:
    train(toy_config(epochs=1, lr=1e-4, init_weights=start, max_train_images=32), toy_split, run_dir)
    save_calibrated_model(run_dir, evaluate_run(run_dir))
    return run_dir


def test_a_fine_tuned_model_records_every_training_stage(
    shipped: tuple[Path, Path], toy_split: Path, tmp_path: Path
) -> None:
    model_file, _ = shipped
    stage_run = _fine_tune(model_file, toy_split, tmp_path / "stage")
    fine_tuned = ship(stage_run, tmp_path / "models", "9.9.10")
    stages = read_metadata(fine_tuned).training_stages
    assert [(s.run, s.epochs) for s in stages] == [("toy", 2), ("stage", 1)]
    assert stages[0].started_from == "ImageNet weights"
    assert stages[1].started_from == f"model 9.9.9 ({model_file.name})"
    card = (tmp_path / "models" / "MODEL_CARD.md").read_text()
    total = stages[0].training_minutes + stages[1].training_minutes
    assert f"3 epochs, {total:.1f} min in all" in card


def test_a_model_without_recorded_stages_needs_the_run_that_made_it(
    shipped: tuple[Path, Path], toy_run: Path, toy_split: Path, tmp_path: Path
) -> None:
    model_file, _ = shipped
    model, metadata = load_model(model_file)
    older = tmp_path / "older.safetensors"
    save_model(model, metadata.model_copy(update={"training_stages": []}), older)
    stage_run = _fine_tune(older, toy_split, tmp_path / "stage")
    with pytest.raises(ModelFileError, match="--parent-run"):
        ship(stage_run, tmp_path / "models", "9.9.10")
    with pytest.raises(ModelFileError, match="did not make"):
        ship(stage_run, tmp_path / "models", "9.9.10", parent_run=stage_run)
    fine_tuned = ship(stage_run, tmp_path / "models", "9.9.10", parent_run=toy_run)
    assert [s.run for s in read_metadata(fine_tuned).training_stages] == ["toy", "stage"]


def test_the_card_says_in_plain_words_what_the_logo_figures_mean() -> None:
    from detecteur.training.card import logo_in_plain_words

    def fold(name: str, auc: float, recall: float) -> dict[str, Any]:
        return {"held_out": name, "conditions": {"web": {"auc": auc, "recall": recall}}}

    logo = {
        "summary": {"web": {"mean_auc": 0.7, "mean_recall": 0.35}},
        "folds": [fold("sdfd-sd21", 0.6, 0.1), fold("new-gan", 0.8, 0.6)],
    }
    text = "\n".join(logo_in_plain_words(logo))
    assert "AUC of 0.70 on average" in text and "it catches 35% of them" in text
    assert "- Stable Diffusion 2.1 faces, never seen: AUC 0.60, 10% caught." in text
    assert "- new-gan, never seen: AUC 0.80, 60% caught." in text  # an unknown source keeps its name
    assert "more than half of the faces of 1 of the 2 generators" in text


def test_a_model_started_from_a_run_never_evaluated_records_that_run(
    toy_run: Path, toy_split: Path, tmp_path: Path
) -> None:
    # A leave-one-generator-out fold is trained, never evaluated: it has best.safetensors and no model.safetensors.
    fold = Path(shutil.copytree(toy_run, tmp_path / "fold"))
    (fold / "model.safetensors").unlink()
    stage_run = _fine_tune(fold / "best.safetensors", toy_split, tmp_path / "stage")
    fine_tuned = ship(stage_run, tmp_path / "models", "9.9.11")
    assert [s.run for s in read_metadata(fine_tuned).training_stages] == ["fold", "stage"]
