"""Ensembles: runs combined into one model file whose logits are their average, evaluated, shipped, served
(torch and ONNX Runtime) and explained like any other model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from detecteur.cli import app
from detecteur.config import RUN_BEST_MODEL_FILE, RUN_CONFIG_FILE
from detecteur.inference.engine import Detector
from detecteur.inference.explain import grad_cam
from detecteur.model.export import MAX_PROBABILITY_DIFFERENCE
from detecteur.model.networks import LogitAverage, build, load_model, read_metadata, save_model
from detecteur.training.calibrate import save_calibrated_model
from detecteur.training.card import ship
from detecteur.training.ensemble import EnsembleError, combine_runs
from detecteur.training.evaluate import evaluate_run
from detecteur.training.train import train
from tests.conftest import toy_config
from tests.test_model import metadata_for

runner = CliRunner()


@pytest.fixture(scope="module")
def lite2_run(toy_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second architecture on the same toy split and input as `toy_run`."""
    run_dir = tmp_path_factory.mktemp("runs") / "toy-lite2"
    train(toy_config(arch="efficientnet_lite2", epochs=1, seed=3), toy_split, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def ensemble_run(toy_run: Path, lite2_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "toy-ensemble"
    result = runner.invoke(app, ["ensemble", str(toy_run), str(lite2_run), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def test_an_ensemble_file_holds_its_members_and_averages_their_logits(
    ensemble_run: Path, toy_run: Path, lite2_run: Path
) -> None:
    ensemble, metadata = load_model(ensemble_run / RUN_BEST_MODEL_FILE)
    assert isinstance(ensemble, LogitAverage)
    assert metadata.arch == "ensemble" and metadata.members == ("efficientnet_lite0", "efficientnet_lite2")
    lite0, _ = load_model(toy_run / RUN_BEST_MODEL_FILE)
    lite2, _ = load_model(lite2_run / RUN_BEST_MODEL_FILE)
    inputs = torch.randn(3, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = (lite0(inputs) + lite2(inputs)) / 2
        assert torch.allclose(ensemble(inputs), expected, atol=1e-5)
        assert not torch.allclose(lite0(inputs), lite2(inputs), atol=1e-3)  # two members that differ


def test_an_ensemble_is_evaluated_and_shipped_like_a_trained_run(
    ensemble_run: Path, toy_run: Path, lite2_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "toy-ensemble"
    shutil.copytree(ensemble_run, run_dir)
    evaluation = evaluate_run(run_dir)
    save_calibrated_model(run_dir, evaluation)
    report = evaluation.report
    names = {Path(figure).name for figure in report["figures"]}
    assert {"training_curves_toy.png", "training_curves_toy-lite2.png", "roc.png"} <= names
    assert "training_curves.png" not in names

    models = tmp_path / "models"
    (models / "figures").mkdir(parents=True)
    (models / "figures" / "training_curves.png").write_bytes(b"the previous model's curves")
    (models / "figures" / "ablation.md").write_text("kept: not a figure of the shipped run")
    model_file = ship(run_dir, models, "9.9.9")
    assert model_file.name == "detecteur-ensemble-9.9.9.safetensors"
    metadata = read_metadata(model_file)
    assert [stage.member for stage in metadata.training_stages] == [0, 1]
    assert [stage.run for stage in metadata.training_stages] == ["toy", "toy-lite2"]
    card = (models / "MODEL_CARD.md").read_text()
    assert "An ensemble of 2 trained runs — `toy` (efficientnet_lite0), `toy-lite2` (efficientnet_lite2)" in card
    assert f"Validation AUC of the ensemble {report['validation']['roc_auc']:.4f}" in card
    assert "Training history of member 1: `toy-lite2` (1 epochs" in card
    assert not (models / "figures" / "training_curves.png").exists()
    assert (models / "figures" / "ablation.md").exists()
    assert (models / "figures" / "training_curves_toy-lite2.png").is_file()


def test_runs_that_do_not_fit_together_are_refused_with_the_reason(
    toy_run: Path, lite2_run: Path, tmp_path: Path
) -> None:
    with pytest.raises(EnsembleError, match="at least 2 runs"):
        combine_runs([toy_run], tmp_path / "one")
    with pytest.raises(EnsembleError, match="named twice"):
        combine_runs([toy_run, toy_run], tmp_path / "twice")

    other_split = tmp_path / "other-split"
    shutil.copytree(lite2_run, other_split)
    description = json.loads((other_split / RUN_CONFIG_FILE).read_text())
    (other_split / RUN_CONFIG_FILE).write_text(json.dumps(description | {"split_sha256": "0" * 64}))
    with pytest.raises(EnsembleError, match="another split"):
        combine_runs([toy_run, other_split], tmp_path / "split")

    rgb_only = tmp_path / "rgb-only"
    shutil.copytree(lite2_run, rgb_only)
    _, metadata = load_model(lite2_run / RUN_BEST_MODEL_FILE)
    save_model(
        build("efficientnet_lite2", 3, pretrained=False),
        metadata.model_copy(update={"in_chans": 3}),
        rgb_only / RUN_BEST_MODEL_FILE,
    )
    with pytest.raises(EnsembleError, match="another input"):
        combine_runs([toy_run, rgb_only], tmp_path / "input")

    result = runner.invoke(app, ["ensemble", str(toy_run), str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "nowhere is not a finished training run" in result.output
    assert not (tmp_path / "x" / RUN_BEST_MODEL_FILE).exists()

    result = runner.invoke(app, ["ensemble", str(toy_run), str(lite2_run), "--out", str(toy_run)])
    assert result.exit_code == 2
    assert "holds a run already" in result.output


def test_metadata_says_ensemble_exactly_when_it_lists_members() -> None:
    with pytest.raises(ValidationError, match="an ensemble lists 2 or more"):
        metadata_for(arch="ensemble")
    with pytest.raises(ValidationError, match="an ensemble lists 2 or more"):
        metadata_for(members=("efficientnet_lite0", "efficientnet_lite2"))
    assert metadata_for(arch="ensemble", members=("efficientnet_lite0", "efficientnet_lite2")).members


@pytest.fixture(scope="module")
def tiny_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights, face-crop framing: the real architectures, exported in seconds."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ensemble-model") / "tiny-ensemble.safetensors"
    members = [build("efficientnet_lite0", 4, pretrained=False), build("efficientnet_lite2", 4, pretrained=False)]
    metadata = metadata_for(
        arch="ensemble", members=("efficientnet_lite0", "efficientnet_lite2"), framing="face_crop", version="tiny"
    )
    save_model(LogitAverage(members), metadata, path)
    return path


def test_an_ensemble_serves_the_same_probabilities_on_onnx_runtime_as_on_torch(
    tiny_ensemble: Path, tmp_path: Path
) -> None:
    on_torch = Detector(tiny_ensemble, backend="torch")
    on_onnx = Detector(tiny_ensemble, backend="onnxruntime", onnx_path=tmp_path / "tiny-ensemble.onnx")
    assert on_onnx.backend.name == "onnxruntime"
    rng = np.random.default_rng(0)
    crops = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(6)]
    torch_probabilities = np.array([v.fake_probability for v in on_torch.predict(crops)])
    onnx_probabilities = np.array([v.fake_probability for v in on_onnx.predict(crops)])
    assert np.abs(torch_probabilities - onnx_probabilities).max() < MAX_PROBABILITY_DIFFERENCE
    assert np.ptp(torch_probabilities) > 1e-4


def test_grad_cam_of_an_ensemble_adds_every_members_evidence(tiny_ensemble: Path) -> None:
    ensemble, _ = load_model(tiny_ensemble)
    model_input = torch.randn(4, 64, 64, generator=torch.Generator().manual_seed(1))
    heatmap = grad_cam(ensemble, model_input)
    assert heatmap.shape == (64, 64)
    assert heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)
