"""One report per image: the evidence lines side by side — the pixel model (with its stability), the content
credentials and the file metadata — and a summary in plain words that never claims more than the strongest line.

How strong each line can be:

- **decisive**: Content Credentials that verify and are signed by a trusted certificate, declaring the content
  AI-generated (IPTC `trainedAlgorithmicMedia` and kin). The signer says so and the file has not changed since.
- **strong**: trusted, intact credentials declaring a camera capture (the signer vouches for the capture; edits made
  before signing are not excluded).
- **moderate**: intact credentials signed by a certificate this service does not trust (anyone can make one), a
  generator named in the file's metadata (IPTC digital source type, Stable Diffusion parameters, `Software`), or
  the pixel model's decided verdict (a classifier with a measured error rate, see the model card).
- **weak**: camera make / model in EXIF, or an untrusted credential declaring a capture — easily forged or copied.
- **none**: no credentials, credentials that fail verification (tampered or damaged: reported, never used as
  proof), unreadable metadata, or a pixel verdict that is borderline or uncertain. A missing line says nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from detecteur.inference.engine import Verdict
from detecteur.inference.provenance import ContentCredentials, FileMetadata, Provenance

Strength = Literal["decisive", "strong", "moderate", "weak", "none"]
Conclusion = Literal["synthetic", "authentic", "inconclusive"]
_RANK: dict[Strength, int] = {"decisive": 4, "strong": 3, "moderate": 2, "weak": 1, "none": 0}


@dataclass(frozen=True)
class Line:
    """One evidence line's reading: what it points to, how strongly, and why, in one sentence."""

    source: Literal["pixel_model", "content_credentials", "metadata"]
    points_to: Conclusion
    strength: Strength
    statement: str


@dataclass(frozen=True)
class Summary:
    conclusion: Conclusion
    strength: Strength
    text: str
    lines: list[Line]


def pixel_line(verdict: Verdict, face_detected: bool) -> Line:
    subject = "the most suspicious face" if face_detected else "the whole image (no face found)"
    p = verdict.fake_probability
    if verdict.verdict == "synthetic":
        return Line("pixel_model", "synthetic", "moderate", f"The pixel model judges {subject} synthetic (p={p:.2f}).")
    if verdict.verdict == "authentic":
        return Line("pixel_model", "authentic", "moderate", f"The pixel model judges {subject} authentic (p={p:.2f}).")
    if verdict.verdict == "uncertain":
        return Line(
            "pixel_model",
            "inconclusive",
            "none",
            f"The pixel model is unsure about {subject}: its score moves too much under mild re-compression, "
            f"resizing or a small shift (p={p:.2f}).",
        )
    return Line("pixel_model", "inconclusive", "none", f"The pixel model finds {subject} borderline (p={p:.2f}).")


def credentials_line(credentials: ContentCredentials) -> Line:
    status = credentials.status
    if status == "absent":
        return Line(
            "content_credentials", "inconclusive", "none", "No Content Credentials (C2PA); most files have none."
        )
    if status == "unreadable":
        return Line("content_credentials", "inconclusive", "none", "Content Credentials are present but unreadable.")
    if status == "invalid":
        return Line(
            "content_credentials",
            "inconclusive",
            "none",
            "Content Credentials are present but fail verification (the file changed after signing, or the "
            "manifest is damaged): they prove nothing.",
        )
    signer = credentials.signer or "an unnamed signer"
    terms = ", ".join(credentials.digital_source_types)
    trusted = status == "valid"
    who = f"signed by {signer}" if trusted else f"signed by {signer}, a certificate this service does not trust"
    if credentials.declares_generated:
        return Line(
            "content_credentials",
            "synthetic",
            "decisive" if trusted else "moderate",
            f"Content Credentials {who} declare the content AI-generated ({terms}).",
        )
    if credentials.declares_captured:
        return Line(
            "content_credentials",
            "authentic",
            "strong" if trusted else "weak",
            f"Content Credentials {who} declare a capture ({terms}).",
        )
    return Line(
        "content_credentials",
        "inconclusive",
        "none",
        f"Content Credentials {who} say nothing about how the content was made.",
    )


def metadata_line(metadata: FileMetadata) -> Line:
    if metadata.status == "unreadable":
        return Line("metadata", "inconclusive", "none", "The file's metadata is unreadable.")
    if metadata.declares_generated:
        found = [f"digital source type {metadata.digital_source_type}"] if metadata.digital_source_type else []
        found += metadata.generator_markers
        return Line(
            "metadata",
            "synthetic",
            "moderate",
            f"The file's metadata names an image generator ({'; '.join(found)}); metadata is easily added or removed.",
        )
    if metadata.has_camera:
        camera = " ".join(part for part in (metadata.camera_make, metadata.camera_model) if part)
        return Line(
            "metadata",
            "authentic",
            "weak",
            f"EXIF names a camera ({camera}); weak evidence, easily forged or copied.",
        )
    return Line("metadata", "inconclusive", "none", "No metadata about the image's origin.")


def summarise(verdict: Verdict, face_detected: bool, provenance: Provenance) -> Summary:
    """The combined reading: the strongest line decides what the summary may say; lines of equal strength that
    disagree leave it inconclusive."""
    lines = [
        pixel_line(verdict, face_detected),
        credentials_line(provenance.content_credentials),
        metadata_line(provenance.metadata),
    ]
    strongest = max(_RANK[line.strength] for line in lines)
    top = [line for line in lines if _RANK[line.strength] == strongest and line.points_to != "inconclusive"]
    if not top:
        return Summary("inconclusive", "none", "No line of evidence is conclusive.", lines)
    directions = {line.points_to for line in top}
    strength = top[0].strength
    if len(directions) > 1:
        text = "The strongest lines of evidence disagree: " + " ".join(line.statement for line in top)
        return Summary("inconclusive", strength, text, lines)
    conclusion = top[0].points_to
    lead = {
        "decisive": "AI-generated" if conclusion == "synthetic" else "authentic",
        "strong": "very likely " + ("AI-generated" if conclusion == "synthetic" else "a genuine capture"),
        "moderate": "leaning " + ("synthetic" if conclusion == "synthetic" else "authentic"),
        "weak": "a weak hint of " + ("generation" if conclusion == "synthetic" else "a camera capture"),
    }[strength]
    others = [line for line in lines if line.points_to not in ("inconclusive", conclusion)]
    text = f"{lead[0].upper()}{lead[1:]}: " + " ".join(line.statement for line in top)
    if others:
        text += " Against it: " + " ".join(line.statement for line in others)
    return Summary(conclusion, strength, text, lines)


def evidence_report(verdict: Verdict, face_detected: bool, provenance: Provenance) -> dict[str, object]:
    """The `evidence` block of the API and of `detecteur predict --json`, as plain data."""
    summary = summarise(verdict, face_detected, provenance)
    return {
        "conclusion": summary.conclusion,
        "strength": summary.strength,
        "summary": summary.text,
        "lines": [asdict(line) for line in summary.lines],
        "content_credentials": asdict(provenance.content_credentials),
        "metadata": asdict(provenance.metadata),
    }
