"""Training by linear probe on a frozen backbone (#20): the saved network is the fitted regression, the run folder is
a run like any other, features are reused from the cache, and recipes that cannot be probes are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from detecteur.config import TrainConfig
from detecteur.model.export import export_onnx
from detecteur.model.networks import StageStatisticsProbe, load_model
from detecteur.training.logo import fold_config
from detecteur.training.probe import fit_logistic
from detecteur.training.train import train
from tests.conftest import toy_config


def probe_config(cache: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "method": "frozen_probe",
        "in_chans": 3,
        "framing": "native_face_crop",
        "crop_files": "native",
        "probe_views": 1,
        "probe_c": 1.0,
        "self_blend_probability": 0.5,
        "feature_cache": cache,
    }
    return toy_config(**(settings | overrides))


def test_the_network_computes_the_fitted_regression() -> None:
    torch.manual_seed(0)
    network = StageStatisticsProbe("efficientnet_lite0", pretrained=True).eval()
    inputs = torch.rand(12, 3, 64, 64)
    with torch.no_grad():
        features = network.features(inputs).numpy()
    labels = np.array([0, 1] * 6)
    mean, scale, weights, bias = fit_logistic(features, labels, np.ones(12), c=1.0)
    network.set_probe(mean, scale, weights, float(bias[0]))
    with torch.no_grad():
        logits = network(inputs).numpy()
    expected = ((features - mean) / scale) @ weights + bias[0]
    assert np.allclose(logits[:, 0], 0.0)
    assert np.allclose(logits[:, 1], expected, atol=1e-3)


@pytest.fixture(scope="module")
def probe_run(toy_split: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path]:
    """A probe fitted on the toy split, with its feature cache."""
    root = tmp_path_factory.mktemp("probe")
    config = probe_config(root / "cache")
    return config, train(config, toy_split, root / "run")


def test_a_probe_run_is_a_run_and_reuses_its_cached_features(
    probe_run: tuple[TrainConfig, Path], toy_split: Path, tmp_path: Path
) -> None:
    config, model_file = probe_run
    run_dir = model_file.parent
    model, metadata = load_model(model_file)
    assert metadata.head == "stage_statistics_probe" and metadata.in_chans == 3
    assert isinstance(model, StageStatisticsProbe)
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 1
    # The toy fakes carry a high-frequency trace the frozen statistics see (16 validation faces; chance is 0.5).
    assert epochs[0]["val_auc"] >= 0.65
    cache_files = list(config.feature_cache.glob("*.npz"))
    assert len(cache_files) == 1
    cached_at = cache_files[0].stat().st_mtime_ns
    again = train(config, toy_split, tmp_path / "again")
    assert cache_files[0].stat().st_mtime_ns == cached_at  # nothing new was computed, so nothing was rewritten
    assert load_model(again)[1].weights_sha256 == metadata.weights_sha256


def test_a_probe_exports_to_onnx(probe_run: tuple[TrainConfig, Path], tmp_path: Path) -> None:
    _, model_file = probe_run
    export_onnx(model_file, tmp_path / "model.onnx")  # checks ONNX Runtime against torch before writing
    assert (tmp_path / "model.onnx").stat().st_size > 0


def test_recipes_that_cannot_be_probes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="in_chans = 3"):
        probe_config(tmp_path, in_chans=4)
    with pytest.raises(ValidationError, match="pixel_signal rgb"):
        probe_config(tmp_path, pixel_signal="npr")  # ImageNet statistics of the picture, not of a residual
    with pytest.raises(ValidationError, match="native_face_crop"):
        probe_config(tmp_path, framing="face_crop")


def test_a_full_recipe_fold_keeps_the_recipe(tmp_path: Path) -> None:
    recipe = probe_config(tmp_path).model_copy(update={"logo": {"full_recipe": True}})
    recipe = TrainConfig.model_validate(recipe.model_dump())
    fold = fold_config(recipe, "gen-a")
    assert fold.exclude_sources == ["gen-a/fake"]
    assert fold.max_train_images == recipe.max_train_images and fold.epochs == recipe.epochs
