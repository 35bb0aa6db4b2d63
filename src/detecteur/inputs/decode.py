"""Safe decoding of untrusted image bytes: format allow-list, size limits, EXIF orientation, RGB.

Everything here treats its input as hostile (it comes from HTTP uploads): any problem with the bytes surfaces as an
`ImageError` subclass carrying a stable `code`, an `http_status` and a message an API user can act on; nothing else
escapes, and nothing is decoded before its size has been checked against the limits.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
from dataclasses import dataclass
from typing import BinaryIO, ClassVar

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from detecteur.inputs.sniff import sniff_kind

# The file suffixes a dataset folder or a folder to score is searched for (training and batch scoring alike).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"})
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MIN_SIDE = 16

# A progressive JPEG can repeat scans without end, and each one is a full pass over the image: 1000 repeated scans in
# a 125 kB file take ~9 s to decode at 16 Mpx. Encoders write 10 (libjpeg) to a few dozen (mozjpeg), so a cap of 100
# refuses only crafted files and bounds decoding time.
MAX_JPEG_SCANS = 100

# MPO is not in this list on purpose: Pillow has no opener registered under that name (asking for it raises KeyError);
# its JPEG opener returns MPO files itself.
_PILLOW_OPENERS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

_FORMAT_NAMES = {
    "JPEG": "JPEG",
    "MPO": "JPEG (MPO)",
    "PNG": "PNG",
    "WEBP": "WebP",
    "BMP": "BMP",
    "GIF": "GIF",
    "TIFF": "TIFF",
}
_ACCEPTED_LIST = "send JPEG, PNG, WebP, BMP, GIF or TIFF"

# Pillow has no single "bad file" exception: these are what its parsers and decoders raise on malformed data.
_DECODER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    struct.error,
    ZeroDivisionError,
    RecursionError,
)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class InputError(ValueError):
    """Uploaded bytes this service refuses (an image here, a video in `video`); `code` and `http_status` say why
    to a client."""

    code: ClassVar[str] = "invalid_input"
    http_status: ClassVar[int] = 400


class ImageError(InputError):
    """The uploaded bytes are not an image this service accepts."""

    code = "invalid_image"


class EmptyImage(ImageError):
    code = "empty_file"
    http_status = 400


class UnsupportedImage(ImageError):
    """Not an image, or an image format outside `ALLOWED_FORMATS`."""

    code = "unsupported_format"
    http_status = 415


class CorruptImage(ImageError):
    """A format we accept, but truncated, damaged or otherwise undecodable."""

    code = "corrupt_image"
    http_status = 422


class ImageTooLarge(ImageError):
    """More pixels than the limit, detected from the header before any pixel is decoded."""

    code = "too_many_pixels"
    http_status = 413


class FileTooLarge(ImageError):
    code = "file_too_large"
    http_status = 413


class ImageTooSmall(ImageError):
    code = "image_too_small"
    http_status = 422


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image and what the upload was: `width` and `height` are after EXIF orientation."""

    image: Image.Image
    format: str
    width: int
    height: int
    original_mode: str


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_side: int = DEFAULT_MIN_SIDE,
) -> DecodedImage:
    """Decode untrusted bytes into an upright RGB image, or raise an `ImageError` subclass.

    Only the first frame of animated or multi-page files is used. Transparent pixels become white. `max_pixels`
    is checked from the header; Pillow's own decompression-bomb guard (`PIL.Image.MAX_IMAGE_PIXELS`) still applies
    on top of it, so a `max_pixels` above that guard is capped by it.
    """
    if not data:
        raise EmptyImage("the file is empty; send an image")
    if len(data) > max_bytes:
        raise FileTooLarge(f"file is {len(data)} bytes; the limit is {_describe_bytes(max_bytes)}")

    with warnings.catch_warnings():
        # Pillow signals images between 1× and 2× its MAX_IMAGE_PIXELS only with a warning; as an error it becomes
        # ImageTooLarge. catch_warnings swaps process-wide filters and is not thread-safe, so this is the second line
        # of defence: the header check against `max_pixels` below is the one that does not depend on it.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Malformed metadata in hostile uploads makes Pillow warn on every request (catch_warnings resets the
        # once-per-location registry); the outcome is reported through the exception or the result instead.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

        with _open(data, max_pixels) as opened:
            image_format = opened.format or "unknown"
            if image_format not in ALLOWED_FORMATS:
                raise UnsupportedImage(f"{image_format} is not a supported image format; {_ACCEPTED_LIST}")
            _check_dimensions(opened.size, max_pixels=max_pixels, min_side=min_side)
            if image_format in ("JPEG", "MPO"):
                _check_jpeg_scans(data)
            _load_first_frame(opened, image_format, max_pixels)
            # A GIF frame may extend its canvas while loading; the limit holds for what was actually decoded.
            _check_dimensions(opened.size, max_pixels=max_pixels, min_side=min_side)
            original_mode = opened.mode
            _apply_exif_orientation(opened)
            try:
                rgb = to_rgb(opened)
            except ValueError as exc:
                raise UnsupportedImage(
                    f"{_FORMAT_NAMES[image_format]} images in the {original_mode} colour mode are not supported; "
                    "send an RGB or grayscale image"
                ) from exc

    return DecodedImage(image=rgb, format=image_format, width=rgb.width, height=rgb.height, original_mode=original_mode)


def read_limited(stream: BinaryIO, max_bytes: int, chunk_size: int = 1 << 16) -> bytes:
    """Read `stream` to its end, raising `FileTooLarge` as soon as more than `max_bytes` have arrived.

    At most `max_bytes + 1` bytes are read, so an endless upload costs no more than the limit.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    received = bytearray()
    while chunk := stream.read(min(chunk_size, max_bytes + 1 - len(received))):
        received += chunk
        if len(received) > max_bytes:
            raise FileTooLarge(f"file is larger than the limit of {_describe_bytes(max_bytes)}")
    return bytes(received)


def to_rgb(image: Image.Image) -> Image.Image:
    """A new RGB image from any Pillow mode.

    Alpha is composited onto white (dropping it would show whatever colour the encoder left under transparent
    pixels, often black). 16-bit and 32-bit integer samples are read as 16-bit and scaled to 8 bits (Pillow's own
    conversion clips them at 255, turning most 16-bit images white); float samples in [0, 1] are scaled by 255,
    others clipped to [0, 255].
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        # Integer arithmetic in 32 bits: a float64 copy of a 40 Mpx image would take 320 MB.
        samples = np.clip(np.asarray(image), 0, 0xFFFF).astype(np.uint32)
        gray = ((samples * 255 + 0x7FFF) // 0xFFFF).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "F":
        samples = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if samples.size and float(samples.max()) <= 1.0:
            samples = samples * 255
        return Image.fromarray(np.round(np.clip(samples, 0, 255)).astype(np.uint8)).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _open(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Parse the header only; no pixel is decoded yet."""
    try:
        # Restricting the openers keeps parsers of formats we refuse anyway (EPS, PSD, ICO, ...) away from the bytes.
        return Image.open(io.BytesIO(data), formats=_PILLOW_OPENERS)
    except UnidentifiedImageError as exc:
        kind = sniff_kind(data)
        if kind in ALLOWED_FORMATS:
            raise CorruptImage(
                f"the file starts like a {_FORMAT_NAMES[kind]} image but its header is damaged or truncated"
            ) from exc
        if kind is None:
            raise UnsupportedImage(f"the file is not an image in a supported format; {_ACCEPTED_LIST}") from exc
        raise UnsupportedImage(f"{kind} is not a supported image format; {_ACCEPTED_LIST}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _pillow_bomb_guard_tripped(exc, max_pixels) from exc
    except _DECODER_ERRORS as exc:
        kind = sniff_kind(data)
        described = f"{_FORMAT_NAMES[kind]} header" if kind in ALLOWED_FORMATS else "image header"
        raise CorruptImage(f"the {described} is damaged or truncated and cannot be read") from exc


def _load_first_frame(image: ImageFile.ImageFile, image_format: str, max_pixels: int) -> None:
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _pillow_bomb_guard_tripped(exc, max_pixels) from exc
    except _DECODER_ERRORS as exc:
        raise CorruptImage(
            f"the {_FORMAT_NAMES[image_format]} image data is truncated or damaged and cannot be decoded"
        ) from exc


def _check_dimensions(size: tuple[int, int], *, max_pixels: int, min_side: int) -> None:
    width, height = size
    pixels = width * height
    if pixels > max_pixels:
        raise ImageTooLarge(f"image is {width}×{height} = {pixels} pixels; the limit is {max_pixels}")
    if min(width, height) < min_side:
        raise ImageTooSmall(f"image is {width}×{height} pixels; each side must be at least {min_side} pixels")


# Pillow raises its guard from inside Image.open, before the caller can see the size; its message carries the count.
_PILLOW_PIXEL_COUNT = re.compile(r"Image size \((\d+) pixels\)")


def _pillow_bomb_guard_tripped(exc: Exception, max_pixels: int) -> ImageTooLarge:
    pillow_limit = Image.MAX_IMAGE_PIXELS or 0
    limit = min(max_pixels, pillow_limit) if pillow_limit else max_pixels
    if counted := _PILLOW_PIXEL_COUNT.search(str(exc)):
        return ImageTooLarge(f"image has {counted.group(1)} pixels; the limit is {limit}")
    exceeded = 2 * pillow_limit if isinstance(exc, Image.DecompressionBombError) else pillow_limit
    return ImageTooLarge(f"image has more than {exceeded} pixels; the limit is {limit}")


def _apply_exif_orientation(image: Image.Image) -> None:
    # Orientation is optional metadata: a photo whose EXIF block is malformed, or names an orientation that does not
    # exist, is still a photo, kept as stored.
    with contextlib.suppress(*_DECODER_ERRORS):
        ImageOps.exif_transpose(image, in_place=True)


# A marker that ends entropy-coded data: 0xFF followed by anything but a stuffed zero, a restart marker or fill.
_JPEG_MARKER_AFTER_SCAN = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def _check_jpeg_scans(data: bytes) -> None:
    """Refuse a JPEG whose first image has more than `MAX_JPEG_SCANS` start-of-scan segments.

    Walks the marker segments rather than counting 0xFFDA bytes: metadata segments (EXIF thumbnails, maker notes,
    the MPO index) and data after the end-of-image marker (phone motion photos append a video) hold arbitrary bytes.
    """
    scans = 0
    position = 2  # after the start-of-image marker
    while position + 1 < len(data):
        if data[position] != 0xFF:
            found = _JPEG_MARKER_AFTER_SCAN.search(data, position)
            if found is None:
                return
            position = found.start()
            continue
        marker = data[position + 1]
        if marker == 0xD9:  # end of image
            return
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stuffed byte, TEM, restart: no length
            position += 2
            continue
        if marker == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise CorruptImage(
                    f"the JPEG has more than {MAX_JPEG_SCANS} scans (encoders write a few dozen at most); "
                    "it is refused because decoding it would take too long"
                )
        segment_length = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + segment_length


def _describe_bytes(count: int) -> str:
    if count >= 1 << 20:
        return f"{count} bytes ({count / (1 << 20):g} MiB)"
    return f"{count} bytes"
