from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detecteur.inference.engine import Detector, FaceVerdict, ImageVerdict, decide
from detecteur.inputs.faces import FaceBox, framed_windows, normalise_face
from detecteur.model.networks import build, save_model
from tests.test_faces import SAMPLES
from tests.test_model import metadata_for


@pytest.mark.parametrize(
    ("fake_probability", "verdict"),
    [
        (0.05, "authentic"),
        (0.29, "authentic"),
        (0.3, "borderline"),
        (0.5, "borderline"),
        (0.7, "borderline"),
        (0.71, "synthetic"),
        (0.99, "synthetic"),
    ],
)
def test_verdict_uses_the_threshold_and_borderline_band_of_the_model_file(
    fake_probability: float, verdict: str
) -> None:
    assert decide(fake_probability, metadata_for(threshold=0.5)).verdict == verdict


def test_confidence_is_the_probability_of_the_more_likely_class() -> None:
    assert decide(0.2, metadata_for()).confidence == pytest.approx(0.8)
    assert decide(0.9, metadata_for()).confidence == pytest.approx(0.9)


def test_a_low_threshold_widens_the_synthetic_side() -> None:
    metadata = metadata_for(threshold=0.2, borderline_band=(0.15, 0.25))
    assert decide(0.3, metadata).verdict == "synthetic"
    assert decide(0.1, metadata).verdict == "authentic"


@pytest.fixture(scope="module")
def face_crop_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("face-model") / "face.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(framing="face_crop"), path)
    return path


@pytest.fixture(scope="module")
def native_face_crop_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("native-face-model") / "native.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(framing="native_face_crop"), path)
    return path


@pytest.mark.parametrize("model", ["face_crop_model", "native_face_crop_model"])
def test_a_face_model_judges_each_detected_face(model: str, request: pytest.FixtureRequest) -> None:
    detector = Detector(request.getfixturevalue(model))
    judged = detector.judge(Image.open(SAMPLES / "stylegan-ffhq-real-00006.jpg").convert("RGB"))
    assert judged.face_detected
    assert len(judged.faces) == 1 and judged.faces[0].box is not None
    assert 0.0 <= judged.most_suspicious.verdict.fake_probability <= 1.0


def test_without_a_face_the_whole_image_is_judged_and_flagged(face_crop_model: Path) -> None:
    judged = Detector(face_crop_model).judge(Image.new("RGB", (320, 200), (90, 90, 90)))
    assert not judged.face_detected
    assert [face.box for face in judged.faces] == [None]


def test_the_image_verdict_is_its_most_suspicious_face() -> None:
    metadata = metadata_for()
    faces = [FaceVerdict(FaceBox(0, 0, 10, 10, 0.9), decide(p, metadata)) for p in (0.1, 0.8, 0.4)]
    assert ImageVerdict(faces, face_detected=True).most_suspicious.verdict.fake_probability == 0.8


def test_detector_crops_exactly_like_dataset_preparation(face_crop_model: Path) -> None:
    image = Image.open(SAMPLES / "stylegan-ffhq-fake-00ELJIYESN.jpg").convert("RGB")
    detector = Detector(face_crop_model)
    (box, region), *_ = detector.regions(image)[0]
    assert box is not None
    # The region is the face at its own scale; what a face_crop model looks at in it is the prepared crop.
    (crop,) = framed_windows(region, detector.metadata.framing, detector.metadata.input_size)
    assert np.array_equal(np.asarray(crop), np.asarray(normalise_face(image, box, 64)))
