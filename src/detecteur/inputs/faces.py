"""Face detection and the one face-crop normalisation shared by dataset preparation and serving.

Detector: BlazeFace short-range through mediapipe Tasks (2–4 ms per image on 2 cores, measured on our
datasets: faces found in 40/40 images of every source), weights vendored in `assets/` — nothing is
downloaded at run time.

Every face, in training data and at serving time alike, goes through `normalise_face`: a square crop
around the detected box with a fixed margin, resampled to the model input size, then re-encoded once as
JPEG at a fixed quality. Sources differ in size, framing and JPEG history; this puts them all through the
same last steps so a detector cannot key on which source an image came from.
"""

from __future__ import annotations

import io
import math
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from detecteur.config import Framing
from detecteur.inputs.mediapipe_lean import skip_unused_mediapipe_modules
from detecteur.inputs.preprocess import model_windows

ASSETS = Path(__file__).parents[1] / "assets"
DEFAULT_DETECTOR_FILE = ASSETS / "face_detection_short_range.tflite"
# Square crop side = FACE_MARGIN × the larger side of BlazeFace's box (which spans brows to chin): the crop
# then holds the whole head with a little background, like an aligned FFHQ face.
FACE_MARGIN = 1.4
NORMALISED_JPEG_QUALITY = 90
MIN_DETECTION_CONFIDENCE = 0.5
# Faces beyond the most confident one need stronger evidence: a spurious second "face" would get a verdict
# of its own, and an image is judged by its most suspicious face.
SECONDARY_FACE_CONFIDENCE = 0.7
# BlazeFace looks at a 128×128 copy of the image whatever its size, so on a huge image the time goes into
# converting and resampling millions of pixels (measured: 2560 px 113 ms, 4000 px 488 ms). Larger images are
# detected on a copy shrunk by an integer factor to at most this side; the boxes are mapped back and the crop is
# cut from the original. Every training source is at most this size, so dataset preparation is unchanged.
DETECTION_MAX_SIDE = 1280


@dataclass(frozen=True)
class FaceBox:
    """A detected face in pixel coordinates of the image it was found in."""

    x: int
    y: int
    width: int
    height: int
    score: float

    def square_crop(
        self, image_width: int, image_height: int, margin: float = FACE_MARGIN
    ) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the square crop around this face, shifted (never padded) to stay
        inside the image: padding would put borders on some sources only — a shortcut."""
        side = min(round(max(self.width, self.height) * margin), image_width, image_height)
        centre_x, centre_y = self.x + self.width / 2, self.y + self.height / 2
        left = int(min(max(round(centre_x - side / 2), 0), image_width - side))
        top = int(min(max(round(centre_y - side / 2), 0), image_height - side))
        return left, top, left + side, top + side


class FaceFinder:
    """BlazeFace short-range via mediapipe Tasks. Thread-safe (one lock); create once and reuse."""

    def __init__(self, model_file: Path = DEFAULT_DETECTOR_FILE, min_confidence: float = MIN_DETECTION_CONFIDENCE):
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging is noisy at INFO
        # Close before interpreter shutdown: mediapipe's own __del__ fails once its modules are torn down. The
        # finalizer is registered before mediapipe is first imported, so that at exit it runs after mediapipe's own
        # atexit hook (atexit is last-in, first-out), which turns the close into a no-op; run before that hook, it
        # would submit to an executor already shut down and print a traceback. (With torch imported first, torch's
        # own finalizers used to get this order by chance; the ONNX Runtime service does not import torch.)
        opened: list[FaceDetectorLike] = []
        self._finalizer = weakref.finalize(self, _close_all, opened)
        skip_unused_mediapipe_modules()  # ~66 MiB and ~0.7 s of drawing and audio modules (docs/lean-serving.md)
        from mediapipe.tasks.python import BaseOptions
        from mediapipe.tasks.python.vision import FaceDetector, FaceDetectorOptions

        options = FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_file)),
            min_detection_confidence=min_confidence,
        )
        self._detector = FaceDetector.create_from_options(options)
        opened.append(self._detector)
        self._lock = threading.Lock()

    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Faces in `image` (RGB), most confident first, clipped to the image: the best one if it reaches
        `MIN_DETECTION_CONFIDENCE`, others only if they reach `SECONDARY_FACE_CONFIDENCE`."""
        import mediapipe as mp

        view = image.convert("RGB")
        factor = math.ceil(max(image.size) / DETECTION_MAX_SIDE)
        if factor > 1:
            view = view.reduce(factor)
        scale_x, scale_y = image.width / view.width, image.height / view.height
        pixels = np.ascontiguousarray(np.asarray(view, dtype=np.uint8))
        with self._lock:
            result = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
        boxes = []
        for detection in result.detections:
            box = detection.bounding_box
            left, top = max(round(box.origin_x * scale_x), 0), max(round(box.origin_y * scale_y), 0)
            right = min(round((box.origin_x + box.width) * scale_x), image.width)
            bottom = min(round((box.origin_y + box.height) * scale_y), image.height)
            if right > left and bottom > top:
                score = float(detection.categories[0].score) if detection.categories else 0.0
                boxes.append(FaceBox(left, top, right - left, bottom - top, score))
        boxes.sort(key=lambda b: b.score, reverse=True)
        return boxes[:1] + [box for box in boxes[1:] if box.score >= SECONDARY_FACE_CONFIDENCE]

    def close(self) -> None:
        self._finalizer()


class FaceDetectorLike(Protocol):
    def close(self) -> None: ...


def _close_all(detectors: list[FaceDetectorLike]) -> None:
    for detector in detectors:
        detector.close()


def native_face_crop(image: Image.Image, box: FaceBox | None) -> Image.Image:
    """The square face region at the image's own scale, nothing resampled or re-encoded: the square crop with
    margin around `box`, or the centred square of the whole image when `box` is None."""
    image = image.convert("RGB")
    if box is None:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        return image.crop((left, top, left + side, top + side))
    return image.crop(box.square_crop(image.width, image.height))


def canonical_jpeg(crop: Image.Image, output_size: int) -> bytes:
    """JPEG bytes of a face crop resampled to `output_size` and encoded once at a fixed quality: the canonical
    form the `face_crop` framing gives every source."""
    resized = crop.resize((output_size, output_size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=NORMALISED_JPEG_QUALITY)
    return buffer.getvalue()


def canonical_face(crop: Image.Image, output_size: int) -> Image.Image:
    """`canonical_jpeg` decoded: what a `face_crop` model sees of a native face crop."""
    with Image.open(io.BytesIO(canonical_jpeg(crop, output_size))) as encoded:
        return encoded.convert("RGB")


def encode_face(image: Image.Image, box: FaceBox | None, output_size: int) -> bytes:
    """JPEG bytes of the normalised face crop: square crop with margin (the whole image, centre-cropped
    square, when `box` is None), resampled to `output_size`, encoded once at a fixed quality.
    Dataset preparation stores exactly these bytes."""
    return canonical_jpeg(native_face_crop(image, box), output_size)


def normalise_face(image: Image.Image, box: FaceBox | None, output_size: int) -> Image.Image:
    """The face crop every `face_crop` model sees — pixel for pixel what a prepared training file decodes to."""
    return canonical_face(native_face_crop(image, box), output_size)


def framed_windows(region: Image.Image, framing: Framing, input_size: int) -> list[Image.Image]:
    """What a model with `framing` looks at in one region (a native face crop, or the whole image for a
    `whole_image` model): the canonical crop, the image itself, or a native crop's windows (`model_windows`), whose
    logits are averaged."""
    if framing == "face_crop":
        return [canonical_face(region, input_size)]
    if framing == "native_face_crop":
        return model_windows(region, input_size)
    return [region]
