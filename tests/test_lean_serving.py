"""The torch-free serving path (docs/lean-serving.md): NumPy preprocessing that gives torch's numbers, a service and
CLI on ONNX Runtime that never import torch or timm, and a base install that does not pull them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from packaging.requirements import Requirement
from PIL import Image
from typer.testing import CliRunner

from detecteur.api.main import create_app
from detecteur.cli import app
from detecteur.config import Framing, Settings
from detecteur.inference.engine import Detector
from detecteur.inference.scoring import IMAGE_SUFFIXES
from detecteur.inference.windows import region_logits
from detecteur.inputs.faces import framed_windows, native_face_crop
from detecteur.inputs.preprocess import InputSpec, preprocess, preprocess_array
from detecteur.model import export
from detecteur.model.backends import OnnxRuntimeBackend, TorchBackend
from detecteur.model.file import ModelFileError, read_metadata, verify_model_file
from detecteur.model.networks import build, load_model, save_model, weights_sha256
from detecteur.model.serving_session import MAX_WINDOWS_PER_RUN
from detecteur.training.data import IMAGE_SUFFIXES as TRAINING_IMAGE_SUFFIXES
from tests.test_api import wait_until_ready
from tests.test_faces import SAMPLES
from tests.test_model import metadata_for

ROOT = Path(__file__).resolve().parents[1]
FRAMINGS: tuple[Framing, ...] = ("face_crop", "native_face_crop", "whole_image")
# NumPy and torch preprocessing may differ by float rounding only.
MAX_INPUT_DIFFERENCE = 1e-6
TORCH_PACKAGES = {"torch", "torchvision", "timm"}
runner = CliRunner()


def sample_images() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted(SAMPLES.glob("*.jpg"))]


def specs_to_check() -> list[InputSpec]:
    """The shipped model's input spec, and small 3- and 4-channel ones of either pixel signal: at 64 px every sample
    is larger than the input, so the native framing cuts two windows out of it."""
    shipped = read_metadata(Settings().model_path).input_spec
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return [
        shipped,
        *(InputSpec(64, in_chans, *imagenet, pixel_signal=signal) for in_chans in (3, 4) for signal in ("rgb", "npr")),
    ]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_numpy_preprocessing_gives_the_numbers_of_torch_on_the_sample_faces(framing: Framing) -> None:
    for spec in specs_to_check():
        for image in sample_images():
            for window in framed_windows(native_face_crop(image, None), framing, spec.input_size):
                expected = preprocess(window, spec).numpy()
                actual = preprocess_array(window, spec)
                assert actual.dtype == np.float32 and actual.shape == expected.shape
                assert np.abs(actual - expected).max() <= MAX_INPUT_DIFFERENCE, (framing, spec)


def test_the_numpy_laplacian_is_exactly_zero_on_a_flat_image_and_not_elsewhere() -> None:
    spec = InputSpec(32, 4, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert not preprocess_array(Image.new("RGB", (32, 32), (90, 120, 200)), spec)[3].any()
    assert np.abs(preprocess_array(sample_images()[0], spec)[3]).max() > 0.05


@pytest.fixture(scope="module")
def native_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random `native_face_crop` model at 64 px, the framing of the model being trained now."""
    path = tmp_path_factory.mktemp("lean-model") / "native.safetensors"
    metadata = metadata_for(framing="native_face_crop", temperature=1.3, version="lean")
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata, path)
    return path


@pytest.fixture(scope="module")
def native_graph(native_model: Path) -> Path:
    out = native_model.with_suffix(".onnx")
    result = runner.invoke(app, ["export", "--model", str(native_model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_both_backends_give_the_same_region_logits_for_a_native_crop_model(
    native_model: Path, native_graph: Path
) -> None:
    model, metadata = load_model(native_model)
    regions = [native_face_crop(image, None) for image in sample_images()]
    on_torch = region_logits(TorchBackend(model, torch.device("cpu")), metadata.input_spec, metadata.framing, regions)
    on_onnx = region_logits(OnnxRuntimeBackend(native_graph), metadata.input_spec, metadata.framing, regions)
    assert on_torch.shape == on_onnx.shape == (len(regions), 2)
    assert np.abs(on_torch - on_onnx).max() < 1e-4
    assert np.ptp(on_onnx[:, 1] - on_onnx[:, 0]) > 1e-3  # not two constants


def test_a_batch_larger_than_one_run_is_scored_in_slices_like_window_by_window(native_graph: Path) -> None:
    backend = OnnxRuntimeBackend(native_graph)
    batch = np.random.default_rng(0).normal(size=(MAX_WINDOWS_PER_RUN * 2 + 3, 4, 64, 64)).astype(np.float32)
    one_by_one = np.concatenate([backend.logits(batch[i : i + 1]) for i in range(len(batch))])
    assert np.abs(backend.logits(batch) - one_by_one).max() < 1e-4


def run_isolated(code: str, env: dict[str, str]) -> dict[str, object]:
    """Run `code` in a fresh interpreter (this one has torch loaded) and return the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), **env},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_service_on_onnx_runtime_never_imports_torch(native_model: Path, native_graph: Path) -> None:
    found = run_isolated(
        f"""
        import json, sys, time
        from fastapi.testclient import TestClient
        from detecteur.api.main import create_app
        from detecteur.config import Settings

        # Not tests.test_api.wait_until_ready: the test modules import torch themselves.
        settings = Settings(model_path={str(native_model)!r}, backend="onnxruntime", onnx_path={str(native_graph)!r})
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 120
            while client.get("/health").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            backend = client.app.state.service.detector.backend.name
            with open({str(SAMPLES / "stylegan-ffhq-real-00006.jpg")!r}, "rb") as face:
                status = client.post("/v1/predict", files={{"file": ("face.jpg", face.read())}}).status_code
        loaded = sorted({TORCH_PACKAGES!r} & set(sys.modules))
        print(json.dumps({{"backend": backend, "status": status, "loaded": loaded}}))
        """,
        {},
    )
    assert found == {"backend": "onnxruntime", "status": 200, "loaded": []}


def test_predict_and_score_on_onnx_runtime_never_import_torch(
    native_model: Path, native_graph: Path, tmp_path: Path
) -> None:
    found = run_isolated(
        f"""
        import json, sys
        from detecteur.cli import app

        codes = []
        for arguments in (["predict", {str(SAMPLES / "stylegan-ffhq-real-00006.jpg")!r}],
                          ["score", {str(SAMPLES)!r}, "--out", {str(tmp_path / "scores.parquet")!r}]):
            try:
                app(arguments)
            except SystemExit as exit:
                codes.append(exit.code)
        print(json.dumps({{"codes": codes, "loaded": sorted({TORCH_PACKAGES!r} & set(sys.modules))}}))
        """,
        {
            "DETECTEUR_BACKEND": "onnxruntime",
            "DETECTEUR_MODEL_PATH": str(native_model),
            "DETECTEUR_ONNX_PATH": str(native_graph),
        },
    )
    assert found == {"codes": [0, 0], "loaded": []}
    assert (tmp_path / "scores.parquet").is_file()


def test_without_torch_a_missing_graph_is_a_clear_error_not_a_fallback(
    native_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "find_spec", lambda name: None)
    monkeypatch.setattr("detecteur.inference.engine.find_spec", lambda name: None)
    with pytest.raises(ModelFileError, match="DETECTEUR_ONNX_PATH"):
        Detector(native_model, backend="onnxruntime", onnx_path=tmp_path / "absent.onnx")


def test_a_missing_graph_is_exported_by_a_child_process_and_then_reused(native_model: Path, tmp_path: Path) -> None:
    target = tmp_path / "graph.onnx"
    assert export.graph_for_serving(native_model, target) == target
    assert export.is_current(target, export.file_sha256(native_model))
    written = target.stat().st_mtime_ns
    assert export.graph_for_serving(native_model, target) == target
    assert target.stat().st_mtime_ns == written


def test_a_heatmap_without_torch_is_a_clear_501(native_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Detector, "can_explain", property(lambda self: False))
    with TestClient(create_app(Settings(model_path=native_model, backend="torch"))) as client:
        wait_until_ready(client)
        face = (SAMPLES / "stylegan-ffhq-real-00006.jpg").read_bytes()
        response = client.post("/v1/predict?explain=true", files={"file": ("face.jpg", face)})
    assert response.status_code == 501
    assert response.json()["error"]["code"] == "explain_unavailable"
    assert "train" in response.json()["error"]["message"]


def test_model_files_are_verified_without_torch_to_the_same_digest(native_model: Path) -> None:
    from safetensors.torch import load_file as load_tensors

    for path in (native_model, Settings().model_path):
        assert verify_model_file(path).weights_sha256 == weights_sha256(load_tensors(str(path)))
    damaged = native_model.with_name("damaged.safetensors")
    data = bytearray(native_model.read_bytes())
    data[-100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="do not match the sha256"):
        verify_model_file(damaged)


def dependency_closure(requirements: list[str]) -> set[str]:
    """Every installed distribution `requirements` pull in, with the extras they ask for (names normalised)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        key = (re.sub(r"[-_.]+", "-", requirement.name).lower(), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = distribution(requirement.name).requires or []
        except PackageNotFoundError:
            continue
        for text in requires:
            needed = Requirement(text)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(needed)
    return {name for name, _ in seen}


def test_the_serve_install_does_not_pull_torch_and_dev_still_has_everything() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    serve = dependency_closure(project["dependencies"] + extras["serve"])
    assert {"onnxruntime", "fastapi", "mediapipe", "safetensors"} <= serve
    assert not serve & TORCH_PACKAGES
    assert "detecteur[train]" in extras["dev"]
    assert dependency_closure(extras["train"]) >= TORCH_PACKAGES


def test_scoring_searches_folders_for_the_suffixes_training_reads() -> None:
    assert set(IMAGE_SUFFIXES) == TRAINING_IMAGE_SUFFIXES


def test_the_graph_metadata_is_read_without_onnx_exactly_as_onnx_reads_it(native_graph: Path, tmp_path: Path) -> None:
    import onnx

    expected = {entry.key: entry.value for entry in onnx.load(str(native_graph)).metadata_props}
    assert export.onnx_metadata_props(native_graph) == expected
    assert set(expected) == {"detecteur", "source_sha256"}
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(native_graph.read_bytes()[:-7])
    with pytest.raises(ModelFileError):
        export.read_onnx_metadata(truncated)


ALLOCATOR_PROBE = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from PIL import Image
    from detecteur.inputs.preprocess import InputSpec, preprocess_array
    from detecteur.model.serving_session import tune_allocator
    if sys.argv[1] == "tuned":
        tune_allocator()
    spec = InputSpec(input_size=224, in_chans=4, mean=(0.5,) * 3, std=(0.5,) * 3)
    window = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    for _ in range(10):
        np.stack([preprocess_array(window, spec) for _ in range(4)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        np.stack([preprocess_array(window, spec) for _ in range(4)])
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc page-fault counts")
def test_the_servers_allocator_reuses_pages_for_a_batch_of_windows() -> None:
    # Mapped afresh or trimmed away after each use, a window's arrays fault ~700 fresh pages and a batch of 4 ~800
    # more: ~1.1 ms a window on 2 cores. The service's allocator settings keep them on the heap, no fresh pages after
    # warm-up.
    faults = {
        setting: float(
            subprocess.run(
                [sys.executable, "-c", ALLOCATOR_PROBE, setting], capture_output=True, text=True, check=True
            ).stdout
        )
        for setting in ("default", "tuned")
    }
    assert faults["tuned"] < 50, faults
    assert faults["default"] > 10 * faults["tuned"] + 100, faults  # the probe sees the faults it is about
