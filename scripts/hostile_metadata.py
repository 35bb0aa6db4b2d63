"""The hostile-input corpus's metadata cases (issue 21): files whose provenance — C2PA manifest store, XMP, EXIF — is
built to hurt the readers in `inference.provenance`. Each must be refused with a 4xx or judged with that evidence
line `unreadable`, never a 5xx, never a hang. The files come from the provenance test fixtures
(`tests/provenance_fixtures.py`: small images signed on the spot by a test-made CA through c2pa-python, then
damaged), so the corpus and the unit tests break the same files.

`make_hostile_corpus.cases()` appends these after its own; the table in `tests/data/hostile/README.md` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from PIL import PngImagePlugin
from scripts.make_hostile_corpus import HostileCase, HostileRequest, upload

MB = 1024 * 1024


def _fixtures() -> ModuleType:
    # Imported when a case is built, not when the corpus is listed: the fixtures need `cryptography` (a dev
    # dependency) and c2pa-python, and `--table` needs neither.
    from tests import provenance_fixtures

    return provenance_fixtures


def _upload(make: Callable[[], bytes], filename: str) -> Callable[[], HostileRequest]:
    return lambda: upload(make(), filename=filename)


def xmp_png(padding: int, compressed: bool) -> bytes:
    """A small PNG whose XMP packet (an iTXt chunk) holds `padding` spaces, zlib-compressed or not."""
    fx = _fixtures()
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", fx.xmp_packet(padding=padding).decode(), zip=compressed)
    return bytes(fx.encoded(fx.plain_image(), "PNG", pnginfo=info))


def malformed_manifest() -> bytes:
    return bytes(_fixtures().malformed_manifest())


def nested_jumbf() -> bytes:
    return bytes(_fixtures().nested_boxes())


def exif_bomb() -> bytes:
    return bytes(_fixtures().exif_bomb())


def tampered_manifest() -> bytes:
    fx = _fixtures()
    return bytes(fx.tampered(fx.signed()))


def c2pa_words_in_a_comment() -> bytes:
    """A plain JPEG whose comment segment says "jumb" and "c2pa": it looks like a manifest store to a byte search
    (the pre-check that keeps files without one away from the native reader) but is none."""
    fx = _fixtures()
    jpeg: bytes = fx.encoded(fx.plain_image())
    payload = b"jumb c2pa manifest store " * 40
    comment = b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + comment + jpeg[2:]


def jumbf_lookalike() -> bytes:
    """A JPEG start of image followed by nothing but "jumbc2pa", repeated: a look-alike of a signed file."""
    return b"\xff\xd8\xff" + b"jumbc2pa" * 1000


def metadata_cases() -> list[HostileCase]:
    return [
        HostileCase(
            "xmp-zip-bomb",
            "a 4 kB PNG whose compressed XMP packet inflates to 3 MB",
            422,
            "corrupt_image",
            _upload(lambda: xmp_png(3_000_000, compressed=True), "xmp-bomb.png"),
            notes="Pillow refuses text chunks inflating past 1 MB",
        ),
        HostileCase(
            "huge-xmp",
            "a PNG carrying a 2 MB XMP packet, uncompressed",
            200,
            None,
            _upload(lambda: xmp_png(2 * MB, compressed=False), "huge-xmp.png"),
            evidence=(("metadata", "unreadable"),),
            notes="packets over 1 MiB are not parsed",
        ),
        HostileCase(
            "malformed-c2pa-manifest",
            "a signed JPEG whose manifest store's boxes are overwritten with junk",
            200,
            None,
            _upload(malformed_manifest, "malformed-c2pa.jpg"),
            evidence=(("content_credentials", "unreadable"),),
        ),
        HostileCase(
            "tampered-c2pa-manifest",
            "a signed JPEG whose image data changed after signing",
            200,
            None,
            _upload(tampered_manifest, "tampered-c2pa.jpg"),
            evidence=(("content_credentials", "invalid"),),
            notes="reported, never used as proof",
        ),
        HostileCase(
            "nested-jumbf-5000",
            "a JPEG whose JUMBF segment nests 5 000 `jumb` superboxes labelled c2pa",
            200,
            None,
            _upload(nested_jumbf, "nested-jumbf.jpg"),
            evidence=(("content_credentials", "unreadable"),),
            notes="C2PA markers, but the C2PA reader finds no manifest store in them",
        ),
        HostileCase(
            "exif-bomb",
            "a JPEG whose EXIF IFD claims 65 535 entries of 4 GB and loops back on itself",
            200,
            None,
            _upload(exif_bomb, "exif-bomb.jpg"),
            evidence=(("metadata", "unreadable"),),
        ),
        HostileCase(
            "c2pa-lookalike-comment",
            'a plain JPEG whose comment says "jumb" and "c2pa"',
            200,
            None,
            _upload(c2pa_words_in_a_comment, "lookalike.jpg"),
            evidence=(("content_credentials", "unreadable"),),
            notes="C2PA markers but no manifest store: nothing is claimed either way",
        ),
        HostileCase(
            "jumbf-lookalike",
            'a JPEG marker followed by 8 kB of "jumbc2pa"',
            422,
            "corrupt_image",
            _upload(jumbf_lookalike, "lookalike-bytes.jpg"),
        ),
    ]
