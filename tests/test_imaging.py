from __future__ import annotations

import io
import random
import struct
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile
from scripts.make_hostile_corpus import png_chunk, png_of_zeros

from detecteur.inputs.decode import (
    ALLOWED_FORMATS,
    MAX_JPEG_SCANS,
    CorruptImage,
    DecodedImage,
    EmptyImage,
    FileTooLarge,
    ImageError,
    ImageTooLarge,
    ImageTooSmall,
    UnsupportedImage,
    decode_image,
    read_limited,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
ORIENTATION = 0x0112


def encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def photo(width: int = 64, height: int = 48) -> Image.Image:
    """Deterministic noise: it exercises the entropy coders, unlike a flat colour."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def halves(
    left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB", size: tuple[int, int] = (64, 32)
) -> Image.Image:
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` but whose pixel data is far too short: decoding it would fail."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(100))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(halves(RED, BLUE, size=(40, 20)), "JPEG", quality=95, exif=exif.tobytes())


def close_to(actual: object, expected: tuple[int, ...], tolerance: int = 12) -> bool:
    """Whether a pixel matches within a lossy codec's error."""
    assert isinstance(actual, tuple), actual
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


@pytest.fixture
def decoding_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any pixel decode fail loudly, to prove a rejection came from the header alone."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# --- images we accept -------------------------------------------------------------------------------------------------

ENCODINGS: dict[str, Callable[[Image.Image], bytes]] = {
    "JPEG": lambda image: encode(image, "JPEG", quality=90),
    "PNG": lambda image: encode(image, "PNG"),
    "WEBP": lambda image: encode(image, "WEBP", quality=90),
    "BMP": lambda image: encode(image, "BMP"),
    "GIF": lambda image: encode(image, "GIF"),
    "TIFF": lambda image: encode(image, "TIFF"),
}


@pytest.mark.parametrize("image_format", sorted(ENCODINGS))
def test_every_allowed_format_decodes_to_an_rgb_image_of_its_size(image_format: str) -> None:
    decoded = decode_image(ENCODINGS[image_format](photo(64, 48)))

    assert isinstance(decoded, DecodedImage)
    assert decoded.format == image_format
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (64, 48)
    assert (decoded.width, decoded.height) == (64, 48)


def test_a_lossless_format_keeps_the_pixels_exactly() -> None:
    original = photo()

    decoded = decode_image(encode(original, "PNG"))

    assert np.array_equal(np.asarray(decoded.image), np.asarray(original))


def test_a_phone_mpo_jpeg_is_accepted_and_its_first_image_used() -> None:
    data = encode(Image.new("RGB", (64, 48), RED), "MPO", save_all=True, append_images=[Image.new("RGB", (64, 48))])

    decoded = decode_image(data)

    assert decoded.format == "MPO"
    assert close_to(decoded.image.getpixel((10, 10)), RED)


def test_the_allow_list_is_the_documented_one() -> None:
    assert {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"} == ALLOWED_FORMATS


def test_a_jpeg_followed_by_a_zip_archive_decodes_as_the_jpeg() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("payload.txt", "hidden")

    decoded = decode_image(ENCODINGS["JPEG"](photo()) + archive.getvalue())

    assert decoded.format == "JPEG"
    assert decoded.image.size == (64, 48)


# --- colour modes ----------------------------------------------------------------------------------------------------


def test_a_cmyk_jpeg_is_converted_to_rgb() -> None:
    decoded = decode_image(encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95))

    assert decoded.original_mode == "CMYK"
    assert close_to(decoded.image.getpixel((16, 16)), RED)


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white() -> None:
    samples = np.tile(np.array([0, 32896, 65535], dtype=np.uint16).repeat(16), (16, 1))

    decoded = decode_image(encode(Image.fromarray(samples), "PNG"))

    assert decoded.original_mode == "I;16"
    assert [decoded.image.getpixel((x, 8)) for x in (0, 16, 32)] == [(0, 0, 0), (128, 128, 128), WHITE]


def test_a_32_bit_integer_tiff_is_read_as_16_bit_samples() -> None:
    samples = np.tile(np.array([0, 32896, 65535], dtype=np.int32).repeat(16), (16, 1))

    decoded = decode_image(encode(Image.fromarray(samples), "TIFF"))

    assert decoded.original_mode == "I"
    assert [decoded.image.getpixel((x, 8)) for x in (0, 16, 32)] == [(0, 0, 0), (128, 128, 128), WHITE]


def test_a_float_tiff_in_the_unit_range_is_scaled_to_8_bits() -> None:
    samples = np.tile(np.array([0.0, 0.5, 1.0], dtype=np.float32).repeat(16), (16, 1))

    decoded = decode_image(encode(Image.fromarray(samples), "TIFF"))

    assert decoded.original_mode == "F"
    assert [decoded.image.getpixel((x, 8)) for x in (0, 16, 32)] == [(0, 0, 0), (128, 128, 128), WHITE]


def test_transparent_palette_entries_become_white() -> None:
    palette_image = halves((0,), (1,), mode="P")
    palette_image.putpalette([0, 0, 0, 255, 0, 0])

    decoded = decode_image(encode(palette_image, "PNG", transparency=0))

    assert decoded.original_mode == "P"
    assert decoded.image.getpixel((5, 5)) == WHITE
    assert decoded.image.getpixel((60, 5)) == RED


@pytest.mark.parametrize(
    ("mode", "transparent", "opaque", "opaque_rgb"),
    [("RGBA", (0, 0, 0, 0), (0, 128, 0, 255), (0, 128, 0)), ("LA", (0, 0), (90, 255), (90, 90, 90))],
)
def test_alpha_is_composited_onto_white_not_black(
    mode: str, transparent: tuple[int, ...], opaque: tuple[int, ...], opaque_rgb: tuple[int, ...]
) -> None:
    decoded = decode_image(encode(halves(transparent, opaque, mode=mode), "PNG"))

    assert decoded.original_mode == mode
    assert decoded.image.getpixel((5, 5)) == WHITE
    assert decoded.image.getpixel((60, 5)) == opaque_rgb


def test_half_transparent_black_becomes_mid_grey() -> None:
    decoded = decode_image(encode(Image.new("RGBA", (32, 32), (0, 0, 0, 128)), "PNG"))

    assert close_to(decoded.image.getpixel((5, 5)), (127, 127, 127), tolerance=1)


@pytest.mark.parametrize(("mode", "value", "rgb"), [("L", 77, (77, 77, 77)), ("1", 1, WHITE)])
def test_grayscale_and_bilevel_images_become_grey_rgb(mode: str, value: int, rgb: tuple[int, int, int]) -> None:
    decoded = decode_image(encode(Image.new(mode, (32, 32), value), "PNG"))

    assert decoded.original_mode == mode
    assert decoded.image.getpixel((5, 5)) == rgb


# --- orientation and frames ------------------------------------------------------------------------------------------


def test_exif_orientation_6_turns_the_image_upright() -> None:
    decoded = decode_image(jpeg_with_orientation(6))

    # Stored 40×20 with red on the left; orientation 6 means "rotate 90° clockwise to display": red ends on top.
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.image.size == (20, 40)
    assert close_to(decoded.image.getpixel((10, 5)), RED)
    assert close_to(decoded.image.getpixel((10, 35)), BLUE)


def test_a_bogus_exif_orientation_leaves_the_image_as_stored() -> None:
    decoded = decode_image(jpeg_with_orientation(99))

    assert (decoded.width, decoded.height) == (40, 20)
    assert close_to(decoded.image.getpixel((5, 10)), RED)


def test_a_malformed_exif_block_is_ignored() -> None:
    data = encode(photo(), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")

    assert decode_image(data).image.size == (64, 48)


def test_an_animated_gif_of_100_frames_yields_its_first_frame_quickly() -> None:
    colours = [(i * 2, 255 - i * 2, 0) for i in range(100)]
    frames = [Image.new("RGB", (64, 64), colour) for colour in colours]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])

    started = time.perf_counter()
    decoded = decode_image(data)

    assert time.perf_counter() - started < 1.0
    assert decoded.format == "GIF"
    assert decoded.image.getpixel((5, 5)) == colours[0]


def test_an_animated_webp_yields_its_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    data = encode(frames[0], "WEBP", lossless=True, save_all=True, append_images=frames[1:])

    assert decode_image(data).image.getpixel((5, 5)) == RED


def test_a_multi_page_tiff_yields_its_first_page() -> None:
    pages = [Image.new("RGB", (32, 24), RED), Image.new("RGB", (64, 64), BLUE)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])

    decoded = decode_image(data)

    assert decoded.image.size == (32, 24)
    assert decoded.image.getpixel((5, 5)) == RED


# --- files we refuse -------------------------------------------------------------------------------------------------


def test_an_empty_upload_is_an_empty_image() -> None:
    with pytest.raises(EmptyImage) as caught:
        decode_image(b"")

    assert caught.value.code == "empty_file"
    assert caught.value.http_status == 400


def test_a_single_byte_is_unsupported() -> None:
    with pytest.raises(UnsupportedImage) as caught:
        decode_image(b"\xff")

    assert caught.value.code == "unsupported_format"


def zip_archive() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("photo.jpg", b"not really")
    return archive.getvalue()


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (b"hello, this is a plain text file\n", "plain text"),
        (b"<!DOCTYPE html><html><body><img src='x.jpg'></body></html>", "HTML"),
        (b'{"image": "base64..."}', "JSON"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"></svg>', "SVG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
        (zip_archive(), "ZIP"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC"),
    ],
)
def test_a_non_image_is_unsupported_and_named_in_the_message(payload: bytes, named: str) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        decode_image(payload)

    assert caught.value.code == "unsupported_format"
    assert caught.value.http_status == 415
    assert str(caught.value) == f"{named} is not a supported image format; send JPEG, PNG, WebP, BMP, GIF or TIFF"


@pytest.mark.parametrize("image_format", ["ICO", "PPM", "TGA", "PCX"])
def test_a_format_pillow_reads_but_we_do_not_allow_is_unsupported(image_format: str) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        decode_image(encode(photo(32, 32), image_format))

    assert caught.value.code == "unsupported_format"


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_a_truncated_image_is_a_corrupt_image(image_format: str) -> None:
    data = ENCODINGS[image_format](photo())

    with pytest.raises(CorruptImage) as caught:
        decode_image(data[: len(data) // 2])

    assert caught.value.code == "corrupt_image"
    assert caught.value.http_status == 422


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF", "WEBP"])
def test_an_image_cut_inside_its_header_is_corrupt_not_unsupported(image_format: str) -> None:
    with pytest.raises(CorruptImage) as caught:
        decode_image(ENCODINGS[image_format](photo())[:20])

    assert caught.value.code == "corrupt_image"


def test_a_jpeg_with_garbage_in_its_compressed_data_decodes_or_is_corrupt() -> None:
    data = bytearray(ENCODINGS["JPEG"](photo()))
    middle = len(data) // 2
    data[middle : middle + 64] = random.Random(0).randbytes(64)

    try:
        decoded = decode_image(bytes(data))
    except CorruptImage as error:
        assert error.code == "corrupt_image"
    else:
        # libjpeg resynchronises and fills the damaged blocks; that is what Pillow does today.
        assert decoded.image.size == (64, 48)


def test_a_png_with_a_wrong_checksum_is_corrupt() -> None:
    data = bytearray(ENCODINGS["PNG"](photo()))
    data[len(data) // 2] ^= 0xFF

    with pytest.raises(CorruptImage) as caught:
        decode_image(bytes(data))

    assert caught.value.code == "corrupt_image"


def test_a_progressive_jpeg_repeating_its_scans_is_refused_before_decoding() -> None:
    data = encode(photo(), "JPEG", progressive=True)
    last_scan = data[data.rfind(b"\xff\xda") : -2]
    scan_bomb = data[:-2] + last_scan * MAX_JPEG_SCANS + b"\xff\xd9"

    with pytest.raises(CorruptImage) as caught:
        decode_image(scan_bomb)

    assert caught.value.code == "corrupt_image"
    assert "scans" in str(caught.value)
    assert decode_image(data).image.size == (64, 48)


def test_bytes_after_the_end_of_a_jpeg_are_not_counted_as_scans() -> None:
    motion_photo = ENCODINGS["JPEG"](photo()) + b"\xff\xda" * (2 * MAX_JPEG_SCANS)

    assert decode_image(motion_photo).format == "JPEG"


# --- size limits -----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("decoding_forbidden")
def test_a_30000_square_png_of_zeros_is_too_large_without_being_decoded() -> None:
    data = png_of_zeros(30_000, 30_000)
    assert len(data) < 200_000

    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data)

    assert caught.value.code == "too_many_pixels"
    assert caught.value.http_status == 413
    assert str(caught.value) == "image has 900000000 pixels; the limit is 40000000"


@pytest.mark.usefixtures("decoding_forbidden")
@pytest.mark.parametrize(
    ("width", "height"),
    [(8_000, 6_000), (10_000, 10_000)],
    ids=["above-our-limit", "above-pillows-warning-threshold"],
)
def test_a_header_above_the_pixel_limit_is_refused_without_decoding(width: int, height: int) -> None:
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(png_header_claiming(width, height))

    assert caught.value.code == "too_many_pixels"


@pytest.mark.usefixtures("decoding_forbidden")
def test_the_pixel_limit_message_gives_the_size_and_the_limit() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(png_header_claiming(8_000, 6_000))

    assert str(caught.value) == "image is 8000×6000 = 48000000 pixels; the limit is 40000000"


def test_an_image_one_pixel_above_a_custom_limit_is_too_large() -> None:
    data = ENCODINGS["PNG"](photo(100, 100))

    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, max_pixels=9_999)

    assert caught.value.code == "too_many_pixels"
    assert decode_image(data, max_pixels=10_000).image.size == (100, 100)


def test_a_file_above_the_byte_limit_is_too_large() -> None:
    data = ENCODINGS["PNG"](photo())

    with pytest.raises(FileTooLarge) as caught:
        decode_image(data, max_bytes=len(data) - 1)

    assert caught.value.code == "file_too_large"
    assert caught.value.http_status == 413
    assert decode_image(data, max_bytes=len(data)).image.size == (64, 48)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (10_000, 10)])
def test_an_image_with_a_side_below_16_pixels_is_too_small(width: int, height: int) -> None:
    with pytest.raises(ImageTooSmall) as caught:
        decode_image(encode(Image.new("L", (width, height)), "PNG"))

    assert caught.value.code == "image_too_small"
    assert caught.value.http_status == 422
    assert f"{width}×{height}" in str(caught.value)


def test_an_image_exactly_at_the_minimum_side_is_accepted() -> None:
    assert decode_image(encode(Image.new("L", (16, 16)), "PNG")).image.size == (16, 16)


# --- robustness ------------------------------------------------------------------------------------------------------


def mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    mutated: list[bytes] = []
    for _ in range(count):
        candidate = bytearray(data)
        choice = rng.random()
        if choice < 0.4:
            for _ in range(rng.randint(1, 8)):
                candidate[rng.randrange(len(candidate))] = rng.randrange(256)
        elif choice < 0.6:
            candidate = candidate[: rng.randrange(1, len(candidate))]
        elif choice < 0.8:
            at = rng.randrange(min(len(candidate), 200))
            candidate[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
        else:
            at = rng.randrange(len(candidate))
            candidate[at:at] = rng.randbytes(rng.randint(1, 50))
        mutated.append(bytes(candidate))
    return mutated


@pytest.mark.parametrize("image_format", sorted(ENCODINGS))
def test_damaged_files_only_ever_raise_image_errors(image_format: str) -> None:
    for damaged in mutations(ENCODINGS[image_format](photo()), count=60, seed=7):
        try:
            decoded = decode_image(damaged)
        except ImageError as error:
            assert error.code in {"unsupported_format", "corrupt_image", "too_many_pixels", "image_too_small"}
        else:
            assert decoded.image.mode == "RGB"


def test_decoding_leaves_pillow_globals_and_warning_filters_as_they_were() -> None:
    filters_before = list(warnings.filters)
    max_pixels_before = Image.MAX_IMAGE_PIXELS

    decode_image(jpeg_with_orientation(6))
    with pytest.raises(ImageTooLarge):
        decode_image(png_header_claiming(10_000, 10_000))

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert max_pixels_before == Image.MAX_IMAGE_PIXELS
    assert list(warnings.filters) == filters_before


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (EmptyImage, "empty_file", 400),
        (UnsupportedImage, "unsupported_format", 415),
        (CorruptImage, "corrupt_image", 422),
        (ImageTooLarge, "too_many_pixels", 413),
        (FileTooLarge, "file_too_large", 413),
        (ImageTooSmall, "image_too_small", 422),
    ],
)
def test_every_image_error_carries_a_stable_code_and_http_status(
    error: type[ImageError], code: str, status: int
) -> None:
    assert issubclass(error, ImageError)
    assert issubclass(error, ValueError)
    assert (error.code, error.http_status) == (code, status)


# --- streaming uploads -----------------------------------------------------------------------------------------------


class EndlessZeros(io.RawIOBase):
    """An upload that never ends, counting what was read from it."""

    def __init__(self) -> None:
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size >= 0, "an unbounded read of an endless stream never returns"
        self.bytes_read += size
        return bytes(size)


def test_read_limited_returns_a_stream_within_the_limit() -> None:
    assert read_limited(io.BytesIO(b"x" * 1000), max_bytes=1000, chunk_size=64) == b"x" * 1000
    assert read_limited(io.BytesIO(b""), max_bytes=10) == b""


def test_read_limited_raises_as_soon_as_the_limit_is_passed() -> None:
    upload = EndlessZeros()

    with pytest.raises(FileTooLarge) as caught:
        read_limited(upload, max_bytes=100_000, chunk_size=4096)  # type: ignore[arg-type]

    assert caught.value.code == "file_too_large"
    assert upload.bytes_read == 100_001
