"""Provenance and the evidence summary, on fixtures the tests make themselves (tests/provenance_fixtures.py)."""

from __future__ import annotations

import time

import pytest
from PIL import Image, PngImagePlugin

from detecteur.inference.engine import Verdict
from detecteur.inference.evidence import summarise
from detecteur.inference.provenance import ContentCredentials, FileMetadata, Provenance, read_provenance
from tests import provenance_fixtures as fx

AUTHENTIC = Verdict(0.05, "authentic", 0.95)
SYNTHETIC = Verdict(0.95, "synthetic", 0.95)


def trusted() -> str:
    return fx.certificates().ca_pem.decode()


def test_a_signed_jpeg_is_read_with_its_generator_actions_and_source_type_and_is_untrusted() -> None:
    credentials = read_provenance(fx.signed()).content_credentials

    assert credentials.status == "untrusted"
    assert credentials.claim_generator == "detecteur-tests 1.0"
    assert credentials.actions == ["c2pa.created"]
    assert credentials.digital_source_types == ["trainedAlgorithmicMedia"]
    assert credentials.declares_generated
    assert credentials.signer and "Detecteur test signer" in credentials.signer
    assert "signingCredential.untrusted" in credentials.failures


def test_a_signature_chaining_to_a_trust_anchor_is_valid() -> None:
    credentials = read_provenance(fx.signed(), trust_anchors=trusted()).content_credentials

    assert credentials.status == "valid"
    assert credentials.failures == []


def test_a_signed_png_is_read() -> None:
    data = fx.signed(fx.encoded(fx.plain_image(), "PNG"), "image/png", source_type=fx.CAPTURED)

    credentials = read_provenance(data).content_credentials

    assert credentials.status == "untrusted"
    assert credentials.digital_source_types == ["digitalCapture"]
    assert credentials.declares_captured


def test_a_file_changed_after_signing_is_invalid_even_with_a_trusted_certificate() -> None:
    credentials = read_provenance(fx.tampered(fx.signed()), trust_anchors=trusted()).content_credentials

    assert credentials.status == "invalid"
    assert "assertion.dataHash.mismatch" in credentials.failures


def test_a_plain_image_has_no_credentials_and_no_metadata() -> None:
    provenance = read_provenance(fx.encoded(fx.plain_image()))

    assert provenance.content_credentials.status == "absent"
    assert provenance.metadata.status == "absent"


def test_xmp_digital_source_type_in_jpeg_and_png() -> None:
    jpeg = fx.jpeg_with_xmp(fx.xmp_packet(creator_tool="Adobe Firefly"))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", fx.xmp_packet().decode(), zip=True)
    png = fx.encoded(fx.plain_image(), "PNG", pnginfo=info)

    from_jpeg, from_png = read_provenance(jpeg).metadata, read_provenance(png).metadata

    assert from_jpeg.digital_source_type == from_png.digital_source_type == "trainedAlgorithmicMedia"
    assert from_jpeg.declares_generated and from_png.declares_generated
    assert any("CreatorTool" in marker for marker in from_jpeg.generator_markers)


def test_stable_diffusion_parameters_in_a_png_text_chunk_and_in_exif_user_comment() -> None:
    png = read_provenance(fx.png_with_text(parameters=fx.SD_PARAMETERS)).metadata
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + fx.SD_PARAMETERS.encode("utf-16-be")
    jpeg = read_provenance(fx.encoded(fx.plain_image(), "JPEG", exif=exif.tobytes())).metadata

    assert png.status == "present" and png.declares_generated
    assert "Stable Diffusion" in png.generator_markers[0]
    assert jpeg.generator_markers == ["EXIF UserComment: Stable Diffusion generation parameters"]


def test_a_generator_in_software_is_a_marker_and_an_editor_is_not() -> None:
    assert read_provenance(fx.jpeg_with_software("Adobe Firefly Image 3")).metadata.declares_generated
    editor = read_provenance(fx.jpeg_with_software("GIMP 2.10")).metadata
    assert editor.software == "GIMP 2.10"
    assert not editor.declares_generated


def test_camera_make_model_and_capture_time() -> None:
    metadata = read_provenance(fx.jpeg_with_camera_exif()).metadata

    assert (metadata.camera_make, metadata.camera_model) == ("Canon", "Canon EOS R6")
    assert metadata.captured_at == "2024:05:01 10:20:30"
    assert metadata.has_camera and not metadata.declares_generated


@pytest.mark.parametrize(
    "build",
    [fx.malformed_manifest, fx.nested_boxes, fx.exif_bomb, lambda: b"\xff\xd8\xff" + b"jumbc2pa" * 1000, lambda: b""],
    ids=["malformed-manifest", "nested-boxes", "exif-bomb", "jumbf-lookalike", "empty"],
)
def test_hostile_metadata_is_absent_or_unreadable_never_an_exception_or_a_hang(build: object) -> None:
    data = build()  # type: ignore[operator]
    started = time.perf_counter()

    provenance = read_provenance(data)

    assert time.perf_counter() - started < 5
    assert provenance.content_credentials.status in ("absent", "unreadable")
    assert provenance.metadata.status in ("absent", "unreadable", "present")


@pytest.mark.parametrize(
    "build",
    [
        fx.nested_boxes,
        lambda: (
            fx.encoded(fx.plain_image())[:2]
            + _comment(b"jumb c2pa manifest store " * 40)
            + fx.encoded(fx.plain_image())[2:]
        ),
    ],
    ids=["nested-boxes", "c2pa-words-in-a-comment"],
)
def test_manifest_markers_the_reader_cannot_read_are_unreadable_not_absent(build: object) -> None:
    credentials = read_provenance(build()).content_credentials  # type: ignore[operator]

    assert credentials.status == "unreadable"
    assert credentials.detail and "no manifest store" in credentials.detail


def _comment(payload: bytes) -> bytes:
    return b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload


def test_a_malformed_manifest_is_unreadable_with_a_reason() -> None:
    credentials = read_provenance(fx.malformed_manifest()).content_credentials

    assert credentials.status == "unreadable"
    assert credentials.detail


def test_an_exif_bomb_leaves_the_metadata_unreadable_not_absent() -> None:
    metadata = read_provenance(fx.exif_bomb()).metadata

    assert metadata.status == "unreadable"
    assert metadata.detail and "EXIF" in metadata.detail


def test_a_huge_xmp_packet_is_not_parsed() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", fx.xmp_packet(padding=3_000_000).decode(), zip=True)
    data = fx.encoded(fx.plain_image(), "PNG", pnginfo=info)

    metadata = read_provenance(data).metadata

    assert len(data) < 20_000  # a small file that would inflate to 3 MB
    assert metadata.status == "unreadable"
    assert metadata.digital_source_type is None


def test_strings_from_the_file_are_clipped_and_printable() -> None:
    metadata = read_provenance(fx.jpeg_with_software("x" * 5000 + "\x1b[31m")).metadata

    assert metadata.software is not None
    assert len(metadata.software) <= 500 and "\x1b" not in metadata.software


# The summary never claims more than its strongest line.


def provenance_of(credentials: ContentCredentials | None = None, metadata: FileMetadata | None = None) -> Provenance:
    return Provenance(credentials or ContentCredentials("absent"), metadata or FileMetadata("absent"))


def test_trusted_credentials_declaring_generation_are_decisive_whatever_the_pixel_model_says() -> None:
    credentials = read_provenance(fx.signed(), trust_anchors=trusted()).content_credentials

    summary = summarise(AUTHENTIC, True, provenance_of(credentials))

    assert (summary.conclusion, summary.strength) == ("synthetic", "decisive")
    assert summary.text.startswith("AI-generated")
    assert "Against it" in summary.text


def test_invalid_credentials_are_never_proof() -> None:
    credentials = read_provenance(fx.tampered(fx.signed()), trust_anchors=trusted()).content_credentials

    summary = summarise(AUTHENTIC, True, provenance_of(credentials))

    assert (summary.conclusion, summary.strength) == ("authentic", "moderate")
    (line,) = [line for line in summary.lines if line.source == "content_credentials"]
    assert line.strength == "none" and "prove nothing" in line.statement


def test_untrusted_credentials_are_no_stronger_than_the_pixel_model() -> None:
    summary = summarise(AUTHENTIC, True, provenance_of(read_provenance(fx.signed()).content_credentials))

    assert (summary.conclusion, summary.strength) == ("inconclusive", "moderate")
    assert "disagree" in summary.text


def test_camera_exif_is_weak_and_a_missing_line_says_nothing() -> None:
    camera = read_provenance(fx.jpeg_with_camera_exif()).metadata
    uncertain = Verdict(0.6, "uncertain", 0.6)

    with_camera = summarise(uncertain, True, provenance_of(metadata=camera))
    nothing = summarise(uncertain, True, provenance_of())

    assert (with_camera.conclusion, with_camera.strength) == ("authentic", "weak")
    assert with_camera.text.startswith("A weak hint")
    assert (nothing.conclusion, nothing.strength) == ("inconclusive", "none")


def test_the_pixel_model_alone_only_leans() -> None:
    summary = summarise(SYNTHETIC, True, provenance_of())

    assert (summary.conclusion, summary.strength) == ("synthetic", "moderate")
    assert summary.text.startswith("Leaning synthetic")
