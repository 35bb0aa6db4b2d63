"""Property-based fuzzing of the decode path: whatever the bytes, `decode_image` returns an RGB image or raises one of
our typed `ImageError`s — never anything else — and within a bounded time.

Seeded (`derandomize`) and without an example database, so a run is reproducible and leaves nothing behind; the
example counts keep the whole file to a few seconds.
"""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from detecteur.inputs.decode import DecodedImage, ImageError, decode_image

# A small pixel limit bounds the work a mutated header can ask for; the property does not depend on the limit.
MAX_PIXELS = 1_000_000
FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=3),  # generous: the machine is shared; a normal input takes milliseconds
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _seed_images() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "jpeg": _encoded(photo, "JPEG", quality=80, exif=exif.tobytes()),
        "progressive-jpeg": _encoded(photo, "JPEG", progressive=True),
        "png": _encoded(photo, "PNG"),
        "palette-png": _encoded(photo.convert("P"), "PNG", transparency=0),
        "16-bit-png": _encoded(Image.fromarray(rng.integers(0, 65535, (32, 32), dtype=np.uint16)), "PNG"),
        "gif": _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": _encoded(photo, "WEBP", quality=80),
        "animated-webp": _encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "bmp": _encoded(photo, "BMP"),
        "tiff": _encoded(photo, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate"),
        "cmyk-jpeg": _encoded(photo.convert("CMYK"), "JPEG"),
    }


SEEDS = _seed_images()


def decodes_or_raises_a_typed_error(data: bytes) -> None:
    try:
        decoded = decode_image(data, max_pixels=MAX_PIXELS)
    except ImageError as error:
        assert error.code and 400 <= error.http_status < 500
        return
    # Anything else escaping fails the test with its traceback.
    assert isinstance(decoded, DecodedImage)
    assert decoded.image.mode == "RGB" and decoded.image.size == (decoded.width, decoded.height)
    assert decoded.width * decoded.height <= MAX_PIXELS


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image with a few byte-level edits: flips, overwrites, deletions, insertions, duplicated runs,
    truncation — the damage of bad transfers and of crafted files alike."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "overwrite", "delete", "insert", "duplicate", "truncate"]))
        if edit == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif edit == "overwrite":
            data[position] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0xD8, 0xDA, 0xD9]))
        elif edit == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        elif edit == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif edit == "duplicate":
            data[position:position] = data[position : position + draw(st.integers(1, 256))]
        else:
            del data[position:]
        if not data:
            break
    return bytes(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise_anything_but_an_image_error(data: bytes) -> None:
    decodes_or_raises_a_typed_error(data)


@FUZZ
@given(
    st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM", b"RIFF"]),
    st.binary(max_size=2048),
)
def test_a_valid_signature_followed_by_garbage_never_escapes_as_another_error(signature: bytes, tail: bytes) -> None:
    decodes_or_raises_a_typed_error(signature + tail)


@settings(FUZZ, max_examples=1000)
@given(mutated_images())
def test_mutated_valid_images_never_raise_anything_but_an_image_error(data: bytes) -> None:
    decodes_or_raises_a_typed_error(data)


def test_every_seed_image_decodes() -> None:
    for name, data in SEEDS.items():
        assert decode_image(data).width > 0, name
