"""What untrusted bytes look like, from their first bytes alone: for error messages that name what was sent
(a PDF, an HTML page, an AVIF image...) rather than only that it was refused. Nothing here decodes anything."""

from __future__ import annotations

import codecs
import re

_TEXT_HEAD_BYTES = 4096
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript"),
    (b"PK\x03\x04", "ZIP"),
    (b"PK\x05\x06", "ZIP"),
    (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "RAR"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
)
_ISO_MEDIA_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}
_RIFF_KINDS = {b"WEBP": "WEBP", b"AVI ": "AVI video", b"WAVE": "WAV audio"}
_BMP_INFO_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def sniff_kind(data: bytes) -> str | None:
    """What the bytes look like, for error messages: a Pillow format name for formats we accept (so a damaged one is
    reported as corrupt, not unsupported), a human name otherwise, None when nothing is recognised."""
    for signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[4:8] == b"ftyp":
        return _ISO_MEDIA_BRANDS.get(data[8:12], "MP4/QuickTime video")
    if data.startswith(b"RIFF") and data[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[data[8:12]]
    if data.startswith(b"BM") and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_INFO_HEADER_SIZES:
        return "BMP"
    return _sniff_text(data[:_TEXT_HEAD_BYTES])


def _sniff_text(head: bytes) -> str | None:
    try:
        # Incremental so that a multi-byte character cut at the end of `head` is not mistaken for binary.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if _CONTROL_CHARACTERS.search(text):
        return None
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith(("<!doctype html", "<html")):
        return "HTML"
    if start.startswith("<") and "<svg" in start:
        return "SVG"
    if start.startswith("<?xml"):
        return "XML"
    if start.startswith("<") and ("<head" in start or "<body" in start):
        return "HTML"
    if start.startswith(("{", "[")):
        return "JSON"
    return "plain text"
