"""The library API: `from detecteur import Detector`, `Detector.load()`, `judge(image | path | bytes)` — and the
README's example, run exactly as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from detecteur import Detector
from detecteur.config import Settings
from detecteur.inputs.decode import FileTooLarge, UnsupportedImage
from detecteur.inputs.image_source import ImageLimits, open_source
from detecteur.model.networks import ModelFileError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "samples" / "stylegan-ffhq-fake-00ELJIYESN.jpg"


def readme_example() -> str:
    """The first Python block of the README's "In Python" section."""
    section = (ROOT / "README.md").read_text().split("\n## In Python\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README's 'In Python' section has no python block"
    return found.group(1)


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    # Loaded from a directory outside the clone: the default model path is found from anywhere in it.
    with contextlib.chdir(tmp_path_factory.mktemp("elsewhere")):
        return Detector.load()


def test_the_readme_example_is_five_lines_and_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    code = readme_example()
    assert len(code.splitlines()) <= 5
    monkeypatch.chdir(ROOT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert "verdict='synthetic'" in printed.getvalue()


def test_load_serves_the_settings_model_with_the_service_limits(detector: Detector) -> None:
    settings = Settings()
    assert detector.model_path == ROOT / settings.model_path
    assert detector.limits == ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)


def test_load_names_the_places_it_looked_when_the_model_is_missing() -> None:
    with pytest.raises(ModelFileError, match="DETECTEUR_MODEL_PATH"):
        Detector.load("models/no-such-model.safetensors")


def test_a_path_bytes_and_an_image_get_the_same_verdicts(detector: Detector) -> None:
    data = SAMPLE.read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    by_path = detector.judge(SAMPLE).faces
    assert [face.verdict for face in detector.judge(str(SAMPLE)).faces] == [face.verdict for face in by_path]
    assert [face.verdict for face in detector.judge(data).faces] == [face.verdict for face in by_path]
    assert [face.verdict for face in detector.judge(image).faces] == [face.verdict for face in by_path]


def test_bad_input_raises_a_clear_error(detector: Detector, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImage, match="plain text is not a supported image format"):
        detector.judge(b"hello, I am plain text")
    with pytest.raises(FileNotFoundError):
        detector.judge(tmp_path / "absent.jpg")
    with pytest.raises(TypeError, match="PIL image, a file path or bytes"):
        detector.judge(42)  # type: ignore[arg-type]


def test_paths_and_bytes_are_decoded_within_the_limits(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    small = ImageLimits(max_bytes=len(data) - 1)
    with pytest.raises(FileTooLarge):
        open_source(data, small)
    with pytest.raises(FileTooLarge):
        open_source(SAMPLE, small)
    assert open_source(SAMPLE, ImageLimits(max_bytes=len(data))).mode == "RGB"
