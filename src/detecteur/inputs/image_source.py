"""What `Detector.judge` accepts: a decoded PIL image, a file's path, or an upload's raw bytes.

Paths and bytes are untrusted input and go through `imaging.decode_image` with the same limits the service applies
to an upload, so a notebook and the API refuse the same files with the same `ImageError`s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from detecteur.inputs.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_image, read_limited

ImageSource = Image.Image | bytes | str | os.PathLike[str]


@dataclass(frozen=True)
class ImageLimits:
    """Limits on one image file (`Settings.max_upload_bytes`, `Settings.max_pixels`)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


def read_image_file(path: str | os.PathLike[str], limits: ImageLimits) -> Image.Image:
    """The upright RGB image in a file; more than `limits.max_bytes` is never read."""
    with open(path, "rb") as handle:
        data = read_limited(handle, limits.max_bytes)
    return decode_image(data, max_pixels=limits.max_pixels, max_bytes=limits.max_bytes).image


def open_source(source: ImageSource, limits: ImageLimits) -> Image.Image:
    """`source` as a PIL image: an image as given, bytes decoded, a path read and decoded.

    Raises an `imaging.ImageError` for bytes that are not an acceptable image, `OSError` (e.g.
    `FileNotFoundError`) for a path that cannot be read, and `TypeError` for anything else."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, bytes):
        return decode_image(source, max_pixels=limits.max_pixels, max_bytes=limits.max_bytes).image
    if isinstance(source, str | os.PathLike):
        return read_image_file(Path(source), limits)
    raise TypeError(f"an image to judge is a PIL image, a file path or bytes, not {type(source).__name__}")
