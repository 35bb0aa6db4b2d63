from __future__ import annotations

import json
from pathlib import Path

import pytest

from detecteur.card import ship
from detecteur.evaluate import evaluate_run
from detecteur.model import load_model


@pytest.fixture(scope="module")
def shipped(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    evaluate_run(toy_run)
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
