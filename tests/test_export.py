"""ONNX export and the onnxruntime backend: same preprocessing, same probabilities as torch, explain still works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from detecteur.cli import app
from detecteur.config import Settings
from detecteur.files import file_sha256
from detecteur.inference.engine import Detector
from detecteur.model import export
from detecteur.model.export import (
    MAX_PROBABILITY_DIFFERENCE,
    ensure_onnx,
    max_probability_difference,
    read_onnx_metadata,
)
from detecteur.model.networks import ModelFileError, build, read_metadata, save_model
from tests.test_faces import SAMPLES
from tests.test_model import metadata_for

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised face-crop model at 64 px: the real architecture, exported in seconds."""
    path = tmp_path_factory.mktemp("export-model") / "tiny.safetensors"
    metadata = metadata_for(framing="face_crop", temperature=1.7, logit_adjustment=(0.0, 1.6), version="tiny")
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata, path)
    return path


@pytest.fixture(scope="module")
def tiny_graph(tiny_model: Path) -> Path:
    """Exported with the command a user runs."""
    out = tiny_model.with_suffix(".onnx")
    result = runner.invoke(app, ["export", "--format", "onnx", "--model", str(tiny_model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def sample_images() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted(SAMPLES.glob("*.jpg"))]


def test_onnx_runtime_gives_the_fake_probabilities_of_torch_on_the_sample_faces(
    tiny_model: Path, tiny_graph: Path
) -> None:
    on_torch = Detector(tiny_model, backend="torch")
    on_onnx = Detector(tiny_model, backend="onnxruntime", onnx_path=tiny_graph)
    assert on_onnx.backend.name == "onnxruntime" and on_torch.backend.name == "torch"
    crops = [crop for image in sample_images() for _, crop in on_torch.regions(image)[0]]
    assert len(crops) >= 7
    torch_probabilities = np.array([v.fake_probability for v in on_torch.predict(crops)])
    onnx_probabilities = np.array([v.fake_probability for v in on_onnx.predict(crops)])
    assert np.abs(torch_probabilities - onnx_probabilities).max() < MAX_PROBABILITY_DIFFERENCE
    # A random model still spreads its outputs: the comparison is not between two constants.
    assert np.ptp(torch_probabilities) > 1e-3
    assert [v.verdict for v in on_torch.predict(crops)] == [v.verdict for v in on_onnx.predict(crops)]


def test_the_comparison_catches_a_graph_of_other_weights(tiny_model: Path, tiny_graph: Path) -> None:
    other = build("efficientnet_lite0", 4, pretrained=False).eval()
    assert max_probability_difference(other, tiny_graph, read_metadata(tiny_model)) > MAX_PROBABILITY_DIFFERENCE


def test_the_graph_carries_the_model_metadata_and_the_hash_of_its_source(tiny_model: Path, tiny_graph: Path) -> None:
    metadata, source_sha256 = read_onnx_metadata(tiny_graph)
    assert metadata == read_metadata(tiny_model)
    assert source_sha256 == file_sha256(tiny_model)


def test_a_current_graph_is_reused_and_a_stale_one_re_exported(
    tiny_model: Path, tiny_graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported: list[Path] = []
    monkeypatch.setattr(export, "export_onnx", lambda model, out: exported.append(out) or out)
    assert ensure_onnx(tiny_model, tiny_graph) == tiny_graph
    assert exported == []
    changed = tmp_path / "changed.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), read_metadata(tiny_model), changed)
    ensure_onnx(changed, tiny_graph)
    assert exported == [tiny_graph]


def test_the_default_graph_lives_in_the_cache_named_after_the_model_content(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(export, "export_onnx", lambda model, out: out)
    path = ensure_onnx(tiny_model)
    assert path.parent == tmp_path / "detecteur"
    assert path.name == f"tiny-{file_sha256(tiny_model)[:16]}.onnx"


def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a graph")
    with pytest.raises(ModelFileError):
        read_onnx_metadata(bogus)
    assert not export.is_current(bogus, file_sha256(tiny_model))


def test_explain_works_under_onnx_runtime_by_loading_the_torch_model_on_demand(
    tiny_model: Path, tiny_graph: Path
) -> None:
    detector = Detector(tiny_model, backend="onnxruntime", onnx_path=tiny_graph)
    assert detector._torch_model is None
    judged = detector.judge(sample_images()[0], explain=True)
    heatmap = judged.faces[0].heatmap_png
    assert heatmap is not None and heatmap.startswith(b"\x89PNG")
    assert detector._torch_model is not None


def test_when_the_graph_cannot_be_made_the_detector_falls_back_to_torch(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service exports in a child process (it does not import torch itself): make the export fail there, by
    # asking for the graph under a path whose parent is a file.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    detector = Detector(tiny_model, backend="onnxruntime", onnx_path=blocker / "absent.onnx")
    assert detector.backend.name == "torch"
    assert 0.0 <= detector.judge(sample_images()[0]).most_suspicious.verdict.fake_probability <= 1.0


def test_export_refuses_an_unknown_format(tiny_model: Path) -> None:
    result = runner.invoke(app, ["export", "--format", "tflite", "--model", str(tiny_model)])
    assert result.exit_code == 2
    assert "unknown export format" in result.output


def test_each_concurrent_inference_gets_its_share_of_the_cores() -> None:
    assert Settings(model_threads=3).threads_per_inference == 3
    assert Settings(inference_threads=64).threads_per_inference == 1


def test_the_service_answers_with_the_onnxruntime_backend(tiny_model: Path, tiny_graph: Path) -> None:
    from fastapi.testclient import TestClient

    from detecteur.api.main import create_app
    from tests.test_api import wait_until_ready

    settings = Settings(model_path=tiny_model, backend="onnxruntime", onnx_path=tiny_graph)
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        detector = client.app.state.service.detector  # type: ignore[attr-defined]
        assert detector.backend.name == "onnxruntime"
        response = client.post(
            "/v1/predict", files={"file": ("face.jpg", (SAMPLES / "stylegan-ffhq-real-00006.jpg").read_bytes())}
        )
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["face_detected"]


def test_a_gpu_device_runs_on_torch_whatever_the_backend_setting(
    tiny_model: Path, tiny_graph: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    monkeypatch.setattr(
        "detecteur.inference.engine.TorchBackend", lambda model, device: built.append(device.type) or model
    )
    monkeypatch.setattr("detecteur.model.networks.load_model", lambda path, device: (None, read_metadata(tiny_model)))
    Detector(tiny_model, device="cuda", backend="onnxruntime", onnx_path=tiny_graph)
    assert built == ["cuda"]
