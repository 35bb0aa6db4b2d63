from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detecteur.inputs.faces import DETECTION_MAX_SIDE, FaceBox, FaceFinder, encode_face, normalise_face

SAMPLES = Path(__file__).parent / "data" / "samples"


@pytest.fixture(scope="module")
def finder() -> Iterator[FaceFinder]:
    face_finder = FaceFinder()
    yield face_finder
    face_finder.close()


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.jpg")), ids=lambda p: p.name)
def test_the_face_in_each_sample_photo_is_found(finder: FaceFinder, sample: Path) -> None:
    image = Image.open(sample).convert("RGB")
    boxes = finder.detect(image)
    assert len(boxes) == 1
    box = boxes[0]
    assert box.score > 0.5
    assert 0.3 * image.width < box.width < image.width
    assert box.x >= 0 and box.x + box.width <= image.width and box.y + box.height <= image.height


def test_a_flat_image_has_no_face(finder: FaceFinder) -> None:
    assert finder.detect(Image.new("RGB", (256, 256), (128, 128, 128))) == []


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (FaceBox(100, 100, 50, 50, 1.0), (90, 90, 160, 160)),  # margin 1.4 around the centre
        (FaceBox(0, 0, 50, 50, 1.0), (0, 0, 70, 70)),  # shifted inside at the top-left corner
        (FaceBox(170, 150, 30, 40, 1.0), (144, 142, 200, 198)),  # shifted inside on the right
        (FaceBox(10, 10, 190, 190, 1.0), (0, 0, 200, 200)),  # never larger than the image
    ],
)
def test_square_crop_keeps_the_margin_and_stays_inside_the_image(
    box: FaceBox, expected: tuple[int, int, int, int]
) -> None:
    assert box.square_crop(200, 200) == expected


def test_normalised_face_is_exactly_what_a_prepared_training_file_decodes_to() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 240, 3), dtype=np.uint8))
    box = FaceBox(60, 80, 100, 110, 0.9)
    stored = Image.open(io.BytesIO(encode_face(image, box, 224))).convert("RGB")
    served = normalise_face(image, box, 224)
    assert served.size == (224, 224)
    assert np.array_equal(np.asarray(stored), np.asarray(served))


def test_without_a_face_the_centre_square_of_the_whole_image_is_used() -> None:
    image = Image.new("RGB", (300, 100), (0, 0, 0))
    image.paste((255, 255, 255), (100, 0, 200, 100))
    face = np.asarray(normalise_face(image, None, 64))
    assert face.shape == (64, 64, 3)
    assert face.mean() > 240


def test_a_huge_image_is_detected_on_a_reduced_copy_with_the_boxes_of_full_resolution(
    finder: FaceFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    face = Image.open(SAMPLES / "stylegan-ffhq-real-00006.jpg").convert("RGB")
    canvas = Image.new("RGB", (3100, 2100), (120, 130, 140))
    canvas.paste(face.resize((face.width * 4, face.height * 4), Image.Resampling.BICUBIC), (2000, 1000))
    with monkeypatch.context() as full_resolution:
        full_resolution.setattr("detecteur.inputs.faces.DETECTION_MAX_SIDE", 100_000)
        (expected,) = finder.detect(canvas)
    seen_sizes: list[tuple[int, int]] = []
    detect = finder._detector.detect
    monkeypatch.setattr(
        finder._detector, "detect", lambda image: seen_sizes.append((image.width, image.height)) or detect(image)
    )
    (box,) = finder.detect(canvas)
    assert max(seen_sizes[0]) <= DETECTION_MAX_SIDE
    assert box.x >= 2000 and box.y >= 1000 and box.x + box.width <= 2000 + face.width * 4
    # Within 2 % of the face size (one pixel of the reduced copy is three here).
    assert np.allclose(
        (box.x, box.y, box.width, box.height),
        (expected.x, expected.y, expected.width, expected.height),
        atol=0.02 * expected.width,
    )
