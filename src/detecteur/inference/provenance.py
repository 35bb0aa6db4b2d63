"""What an image file says about where it came from: C2PA Content Credentials and the metadata generators and
cameras write. Read from the uploaded bytes, before anything re-encodes them, and as hostile input.

Two evidence lines come out of `read_provenance`:

- `ContentCredentials`: the C2PA manifest store read and verified by the official bindings (`c2pa-python`): is there
  one, does its signature verify (`valid`: intact and signed by a trusted certificate; `untrusted`: intact, but the
  certificate is not on this service's trust list; `invalid`: the signature or a hash does not match — tampered or
  damaged, which proves nothing), the claim generator, and the actions and IPTC digital source types it asserts.
  The reader never goes to the network (no remote manifests, no OCSP).
- `FileMetadata`: XMP `Iptc4xmpExt:DigitalSourceType`, the AI-tool markers generators write (PNG text chunks such as
  Stable Diffusion's `parameters`, ComfyUI's `prompt`, an EXIF UserComment holding generation settings, `Software`
  naming a generator), and the EXIF camera make, model and capture time. Read with Pillow — the decoder this service
  already trusts with hostile files, so no second parser sees the bytes; Pillow gives the raw XMP packet, PNG text
  chunks and EXIF IFDs, which is all this needs (pyexiv2 would add a C++ parser and a build dependency; exifread
  does not read XMP or PNG text).

Nothing here raises on bad input: a file whose metadata cannot be read gets `status="unreadable"` with the reason.
Size limits: the whole file is held to the upload limit by the caller; an XMP packet or EXIF block over
`MAX_METADATA_BYTES` is not parsed ("unreadable: too large").
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 1 << 20  # an XMP packet or EXIF block larger than this is not parsed
MAX_TEXT_VALUE = 500  # characters kept of any string read from the file (claim generator, Software, ...)
MAX_LISTED = 20  # actions, source types and markers kept per image
MARKERS_WITHOUT_MANIFEST = (
    "the file carries C2PA manifest-store markers (JUMBF 'jumb', 'c2pa') but the C2PA reader finds no manifest "
    "store in them: damaged or a look-alike"
)

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/) that say a generator made the
# content, or part of it, and those that say a camera or scanner captured it.
GENERATED_SOURCE_TYPES = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia", "compositeSynthetic"}
)
CAPTURED_SOURCE_TYPES = frozenset(
    {"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print", "compositeCapture"}
)
# Substrings of a Software / claim-generator value that name an image generator (case-insensitive).
GENERATOR_NAMES = (
    "stable diffusion",
    "stablediffusion",
    "automatic1111",
    "comfyui",
    "invokeai",
    "novelai",
    "midjourney",
    "dall-e",
    "dall·e",
    "firefly",
    "imagen",
    "flux",
    "leonardo.ai",
    "ideogram",
    "gpt-4o",
    "chatgpt",
    "bing image creator",
)
# PNG text chunks generators write: key -> who writes it.
GENERATOR_TEXT_CHUNKS = {
    "parameters": "Stable Diffusion (AUTOMATIC1111 / Forge) generation parameters",
    "prompt": "ComfyUI prompt graph",
    "workflow": "ComfyUI workflow",
    "invokeai_metadata": "InvokeAI generation metadata",
    "sd-metadata": "InvokeAI generation metadata",
    "dream": "InvokeAI (dream) generation metadata",
    "negative_prompt": "generation prompt",
}
_SD_SETTINGS = re.compile(r"\bSteps: ?\d+.*\bSampler: ", re.DOTALL)

CredentialStatus = Literal["absent", "valid", "untrusted", "invalid", "unreadable"]
MetadataStatus = Literal["absent", "present", "unreadable"]

# EXIF tags (TIFF 6.0 / EXIF 2.3).
_MAKE, _MODEL, _SOFTWARE, _DATETIME = 0x010F, 0x0110, 0x0131, 0x0132
_EXIF_IFD, _DATETIME_ORIGINAL, _USER_COMMENT = 0x8769, 0x9003, 0x9286

_PILLOW_OPENERS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_C2PA_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                 "GIF": "image/gif", "TIFF": "image/tiff"}  # fmt: skip


@dataclass(frozen=True)
class ContentCredentials:
    status: CredentialStatus
    claim_generator: str | None = None
    signer: str | None = None  # the certificate's organisation and common name, as the manifest states them
    signed_at: str | None = None
    digital_source_types: list[str] = field(default_factory=list)  # IPTC terms, e.g. "trainedAlgorithmicMedia"
    actions: list[str] = field(default_factory=list)  # e.g. "c2pa.created"
    failures: list[str] = field(default_factory=list)  # validation failure codes, e.g. "assertion.dataHash.mismatch"
    detail: str | None = None  # why it is unreadable

    @property
    def declares_generated(self) -> bool:
        return any(term in GENERATED_SOURCE_TYPES for term in self.digital_source_types)

    @property
    def declares_captured(self) -> bool:
        return any(term in CAPTURED_SOURCE_TYPES for term in self.digital_source_types)


@dataclass(frozen=True)
class FileMetadata:
    status: MetadataStatus
    digital_source_type: str | None = None  # XMP Iptc4xmpExt:DigitalSourceType, as the IPTC term
    generator_markers: list[str] = field(default_factory=list)  # what in the file names an image generator
    software: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    captured_at: str | None = None  # EXIF DateTimeOriginal (or DateTime), as written
    detail: str | None = None  # what could not be read

    @property
    def declares_generated(self) -> bool:
        return self.digital_source_type in GENERATED_SOURCE_TYPES or bool(self.generator_markers)

    @property
    def has_camera(self) -> bool:
        return bool(self.camera_make or self.camera_model)


@dataclass(frozen=True)
class Provenance:
    content_credentials: ContentCredentials
    metadata: FileMetadata


def read_provenance(data: bytes, trust_anchors: str | None = None) -> Provenance:
    """Both evidence lines from an upload's bytes (already held to the upload size limit by the caller).
    `trust_anchors`: PEM certificates whose chains make a C2PA signature `valid` rather than `untrusted`."""
    image_format = _format_of(data)
    return Provenance(read_content_credentials(data, image_format, trust_anchors), read_metadata(data))


def read_content_credentials(
    data: bytes, image_format: str | None = None, trust_anchors: str | None = None
) -> ContentCredentials:
    # Every C2PA manifest store is a JUMBF superbox ("jumb") labelled "c2pa", in every image format: without those
    # bytes there is nothing to read, and the native parser never sees the file.
    if b"jumb" not in data or b"c2pa" not in data:
        return ContentCredentials("absent")
    mime = _C2PA_FORMATS.get(image_format or "")
    if mime is None:
        return ContentCredentials("unreadable", detail="content credentials in this format are not read")
    try:
        import c2pa
    except ImportError:  # pragma: no cover - c2pa-python is a dependency; a broken install is still not a 5xx
        return ContentCredentials("unreadable", detail="the C2PA reader (c2pa-python) is not installed")
    try:
        with c2pa.Reader(mime, io.BytesIO(data), None, _c2pa_context(trust_anchors)) as reader:
            store = reader.get_active_manifest() or {}
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except c2pa.C2paError.ManifestNotFound:
        # The bytes carry the markers of a manifest store (checked above) yet the reader finds none: damaged boxes
        # or a look-alike. That is not "no credentials" — it cannot be told either way.
        return ContentCredentials("unreadable", detail=MARKERS_WITHOUT_MANIFEST)
    except (c2pa.C2paError, KeyError, ValueError, TypeError, OSError) as error:
        return ContentCredentials("unreadable", detail=_clip(f"the manifest cannot be read: {error}"))
    return _credentials_from(store, state, results)


def _c2pa_context(trust_anchors: str | None) -> Any:
    import c2pa

    verify = {"remote_manifest_fetch": False, "ocsp_fetch": False}
    settings: dict[str, Any] = {"verify": verify}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def _credentials_from(manifest: dict[str, Any], state: str | None, results: dict[str, Any]) -> ContentCredentials:
    active = results.get("activeManifest") or {}
    failures = [str(item.get("code")) for item in active.get("failure") or [] if isinstance(item, dict)]
    untrusted = "signingCredential.untrusted" in failures
    other_failures = [code for code in failures if code != "signingCredential.untrusted"]
    status: CredentialStatus
    if other_failures or state not in ("Valid", "Trusted"):
        status = "invalid"
    elif untrusted:
        status = "untrusted"
    else:
        status = "valid"
    actions: list[str] = []
    source_types: list[str] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data") or {}
        for action in data.get("actions") or [] if isinstance(data, dict) else []:
            if not isinstance(action, dict):
                continue
            if action.get("action"):
                actions.append(_clip(str(action["action"])))
            if action.get("digitalSourceType"):
                source_types.append(source_type_term(str(action["digitalSourceType"])))
    signature = manifest.get("signature_info") or {}
    signer = ", ".join(str(signature[key]) for key in ("issuer", "common_name") if signature.get(key)) or None
    return ContentCredentials(
        status=status,
        claim_generator=_claim_generator(manifest),
        signer=_clip(signer) if signer else None,
        signed_at=_clip(str(signature["time"])) if signature.get("time") else None,
        digital_source_types=_unique(source_types),
        actions=_unique(actions),
        failures=_unique(failures),
    )


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict) and infos[0].get("name"):
        info = infos[0]
        return _clip(f"{info['name']} {info.get('version', '')}".strip())
    generator = manifest.get("claim_generator")
    return _clip(str(generator)) if generator else None


def source_type_term(value: str) -> str:
    """The IPTC term of a digital source type, from its URI or a bare term."""
    value = value.strip()
    if value.startswith(IPTC_SOURCE_TYPES):
        value = value[len(IPTC_SOURCE_TYPES) :]
    return _clip(value.rstrip("/").rsplit("/", 1)[-1])


def read_metadata(data: bytes) -> FileMetadata:
    """XMP digital source type, generator markers and camera EXIF, with Pillow; never raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=_PILLOW_OPENERS) as image:
                return _metadata_of(image)
    except Exception as error:  # hostile bytes: whatever Pillow raises, the evidence line says it is unreadable
        log.debug("metadata unreadable: %r", error)
        return FileMetadata("unreadable", detail=_clip(f"the metadata cannot be read: {type(error).__name__}"))


def _metadata_of(image: Image.Image) -> FileMetadata:
    problems: list[str] = []
    markers: list[str] = []
    source_type = None
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if xmp:
        if len(xmp) > MAX_METADATA_BYTES:
            problems.append(f"XMP packet of {len(xmp)} bytes not read (limit {MAX_METADATA_BYTES})")
        else:
            text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
            source_type = _xmp_source_type(text)
            if tool := _xmp_creator_tool(text):
                markers.extend(_generator_named(tool, "XMP CreatorTool"))
    for key, value in image.info.items():
        if isinstance(key, str) and key.lower() in GENERATOR_TEXT_CHUNKS and isinstance(value, str) and value:
            markers.append(f"text chunk '{_clip(key, 40)}': {GENERATOR_TEXT_CHUNKS[key.lower()]}")
    software = make = model = captured = None
    raw_exif = image.info.get("exif")
    if raw_exif and len(raw_exif) > MAX_METADATA_BYTES:
        problems.append(f"EXIF block of {len(raw_exif)} bytes not read (limit {MAX_METADATA_BYTES})")
    else:
        try:
            exif = image.getexif()
            if raw_exif and not exif:  # Pillow skips what it cannot read (an EXIF bomb) and returns nothing
                problems.append("EXIF block present but none of its entries could be read")
            software, make, model = (_text(exif.get(tag)) for tag in (_SOFTWARE, _MAKE, _MODEL))
            details = exif.get_ifd(_EXIF_IFD)
            captured = _text(details.get(_DATETIME_ORIGINAL)) or _text(exif.get(_DATETIME))
            comment = _text(details.get(_USER_COMMENT), limit=MAX_METADATA_BYTES)
            if comment and _SD_SETTINGS.search(comment):
                markers.append("EXIF UserComment: Stable Diffusion generation parameters")
        except Exception as error:  # a malformed EXIF block loses the camera line, not the rest
            problems.append(f"EXIF unreadable ({type(error).__name__})")
    software = software or _text(image.info.get("Software")) or _text(image.info.get("software"))
    if software:
        markers.extend(_generator_named(software, "Software"))
    found = any((source_type, markers, software, make, model, captured))
    status: MetadataStatus = "present" if found else ("unreadable" if problems else "absent")
    return FileMetadata(
        status=status,
        digital_source_type=source_type,
        generator_markers=_unique(markers),
        software=software,
        camera_make=make,
        camera_model=model,
        captured_at=captured,
        detail="; ".join(problems) or None,
    )


_XMP_SOURCE_TYPE = re.compile(
    r"Iptc4xmpExt:DigitalSourceType\s*(?:=\s*[\"']([^\"'<>]{1,300})[\"']|>\s*([^<>]{1,300}?)\s*<)"
)
_XMP_CREATOR_TOOL = re.compile(r"xmp:CreatorTool\s*(?:=\s*[\"']([^\"'<>]{1,300})[\"']|>\s*([^<>]{1,300}?)\s*<)")


def _xmp_source_type(text: str) -> str | None:
    """`Iptc4xmpExt:DigitalSourceType`, attribute or element form. A pattern, not an XML parser: the packet is
    hostile (entity expansion, deep nesting) and only this one value is wanted."""
    if found := _XMP_SOURCE_TYPE.search(text):
        return source_type_term(found.group(1) or found.group(2))
    return None


def _xmp_creator_tool(text: str) -> str | None:
    if found := _XMP_CREATOR_TOOL.search(text):
        return _clip(found.group(1) or found.group(2))
    return None


def _generator_named(value: str, where: str) -> list[str]:
    lowered = value.lower()
    return (
        [f"{where} names an image generator: {_clip(value, 80)}"] if any(n in lowered for n in GENERATOR_NAMES) else []
    )


def _text(value: object, limit: int = MAX_TEXT_VALUE) -> str | None:
    if isinstance(value, bytes):
        # EXIF UserComment starts with an 8-byte character-code prefix.
        if value[:8] in (b"ASCII\x00\x00\x00", b"UNICODE\x00", b"\x00" * 8):
            encoding = "utf-16-be" if value[:8] == b"UNICODE\x00" else "latin-1"
            value = value[8:].decode(encoding, "replace")
        else:
            value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return _clip(value, limit) if value else None


def _clip(value: str, limit: int = MAX_TEXT_VALUE) -> str:
    value = "".join(ch if ch.isprintable() else " " for ch in value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))[:MAX_LISTED]


def _format_of(data: bytes) -> str | None:
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data), formats=_PILLOW_OPENERS) as image:
            return image.format
    return None


def load_trust_anchors(path: Path | None) -> str | None:
    """The PEM trust list `Settings.c2pa_trust_anchors` names, or None."""
    return path.read_text() if path else None
