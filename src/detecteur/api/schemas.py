"""The API contract: every response and error body has a schema, so `/docs` is the real API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from detecteur.cases.models import CaseLink

VerdictLabel = Literal["authentic", "borderline", "synthetic", "uncertain"]
Strength = Literal["decisive", "strong", "moderate", "weak", "none"]
Conclusion = Literal["synthetic", "authentic", "inconclusive"]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `unsupported_format`.")
    message: str = Field(description="What went wrong, in plain words.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "loading", "unavailable", "draining"]
    model_loaded: bool
    model_version: str | None = None
    detail: str | None = None


class Box(BaseModel):
    x: int
    y: int
    width: int
    height: int
    score: float = Field(description="Face detector confidence.")


class StabilityResult(BaseModel):
    probabilities: dict[str, float] = Field(
        description="The face's fake probability re-scored on a degraded copy, by its name: `shift_4px` (moved 4 px "
        "right and down; the service's rule), `jpeg_q75` (re-saved as JPEG at quality 75), `resize_0.75` (shrunk to "
        "0.75×), `combined` (all three in one copy)."
    )
    spread: float = Field(ge=0, le=1, description="Max − min over the original and the degraded probabilities.")
    straddles_threshold: bool
    stable: bool = Field(description="False: a decided verdict became `uncertain`.")


class FaceResult(BaseModel):
    box: Box | None = Field(description="The face in image pixels; null when the whole image was judged.")
    fake_probability: float = Field(ge=0, le=1, description="Calibrated probability that the face is synthetic.")
    verdict: VerdictLabel = Field(
        description="`uncertain`: the model would have decided, but its score did not hold under mild degradations."
    )
    confidence: float = Field(ge=0.5, le=1, description="max(p, 1 − p): probability of the more likely class.")
    heatmap_png: str | None = Field(None, description="Grad-CAM overlay (base64 PNG) when explain=true.")
    stability: StabilityResult | None = Field(None, description="Null when the stability check is turned off.")


class Timings(BaseModel):
    provenance_ms: float = 0.0
    decode_ms: float
    faces_ms: float
    model_ms: float
    total_ms: float


class ContentCredentialsResult(BaseModel):
    status: Literal["absent", "valid", "untrusted", "invalid", "unreadable"] = Field(
        description="`valid`: intact and signed by a trusted certificate; `untrusted`: intact, signed by a "
        "certificate not on this service's trust list; `invalid`: a signature or hash does not match (tampered or "
        "damaged — never proof); `unreadable`: present but could not be parsed."
    )
    claim_generator: str | None = None
    signer: str | None = None
    signed_at: str | None = None
    digital_source_types: list[str] = Field([], description="IPTC terms, e.g. `trainedAlgorithmicMedia`.")
    actions: list[str] = []
    failures: list[str] = Field([], description="C2PA validation failure codes.")
    detail: str | None = None


class MetadataResult(BaseModel):
    status: Literal["absent", "present", "unreadable"]
    digital_source_type: str | None = Field(None, description="XMP `Iptc4xmpExt:DigitalSourceType` (IPTC term).")
    generator_markers: list[str] = Field([], description="What in the file names an image generator.")
    software: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    captured_at: str | None = None
    detail: str | None = None


class EvidenceLine(BaseModel):
    source: Literal["pixel_model", "content_credentials", "metadata"]
    points_to: Conclusion
    strength: Strength
    statement: str


class Evidence(BaseModel):
    conclusion: Conclusion = Field(description="What the strongest line(s) of evidence point to.")
    strength: Strength = Field(description="How strong that line is; the summary never claims more.")
    summary: str = Field(description="The combined reading in plain words.")
    lines: list[EvidenceLine] = Field(description="Pixel model, content credentials, metadata.")
    content_credentials: ContentCredentialsResult
    metadata: MetadataResult


class ImageResult(BaseModel):
    filename: str | None
    width: int
    height: int
    face_detected: bool = Field(description="False when no face was found and the whole image was judged.")
    verdict: VerdictLabel = Field(description="The most suspicious face's verdict.")
    fake_probability: float = Field(ge=0, le=1)
    confidence: float
    faces: list[FaceResult]
    evidence: Evidence = Field(description="Every line of evidence about this image, side by side, with a summary.")
    timings: Timings
    case: CaseLink | None = Field(
        None, description="The case recorded for this image, and the earlier one when the same bytes were seen."
    )


class PredictResponse(BaseModel):
    model_version: str
    threshold: float
    borderline_band: tuple[float, float]
    results: list[ImageResult]


class SeedRawScores(BaseModel):
    fake: float
    real: float


class SeedPredictResponse(BaseModel):
    """The seed web client's contract, with the labels the right way round."""

    result: Literal["Fake", "Real"]
    confidence: float = Field(
        ge=50,
        le=100,
        description="Percent, 50–100: how far the face is from the decision threshold, as the probability of the "
        "reported result once the threshold is folded into the calibration (so that it sits at 50).",
    )
    raw_scores: SeedRawScores = Field(description="The same threshold-centred probabilities: fake + real = 1.")


class ModelInfo(BaseModel):
    version: str
    arch: str = Field(description='The network, or "ensemble": the average of the `members` networks\' logits.')
    members: list[str] = Field(default=[], description="For an ensemble: each member's architecture.")
    in_chans: int
    input_size: int
    framing: str
    labels: tuple[str, str]
    threshold: float
    borderline_band: tuple[float, float]
    temperature: float
    logit_adjustment: tuple[float, float]
    metrics: dict[str, Any]
    data_summary: dict[str, Any]
    created_at: str
    git_commit: str | None
    training_stages: list[dict[str, Any]] = Field(
        default=[],
        description="Every training run that led to these weights, oldest first: run, epochs, "
        "training_minutes, device, started_from.",
    )
    figures: list[str] = Field(description="URLs of the model card's figures.")


class VideoInfoResult(BaseModel):
    container: str = Field(description="`MP4/MOV`, `WebM/Matroska` or `AVI`.")
    codec: str
    width: int = Field(description="Frame width as displayed (after the container's rotation).")
    height: int
    duration_s: float
    fps: float | None = Field(description="The stream's average frame rate, when the container gives it.")
    frames_sampled: int
    sample_fps: float = Field(description="The sampling rate asked for; lower when a long clip hit the frame cap.")


class TrackFaceResult(BaseModel):
    sample: int = Field(description="Index of the sampled frame (into `series`).")
    time_s: float = Field(description="Seconds from the first frame.")
    box: Box | None = Field(description="The face in frame pixels; null when the whole frame was judged.")
    fake_probability: float = Field(ge=0, le=1)


class TrackResult(BaseModel):
    track_id: int
    frames_seen: int = Field(description="Sampled frames in which this face was found.")
    first_s: float
    last_s: float
    fake_probability: float = Field(ge=0, le=1, description="Mean calibrated fake probability over the track.")
    fraction_over_threshold: float = Field(ge=0, le=1, description="Share of its frames at or above the threshold.")
    verdict: VerdictLabel = Field(description="The model's threshold and borderline band applied to the mean.")
    confidence: float = Field(ge=0.5, le=1)
    faces: list[TrackFaceResult]


class SeriesPoint(BaseModel):
    time_s: float
    fake_probability: dict[str, float] = Field(
        description="Per track id (as a string), for the tracks seen in this frame; a chart's series per track."
    )


class VideoResponse(BaseModel):
    model_version: str
    threshold: float
    borderline_band: tuple[float, float]
    filename: str | None
    video: VideoInfoResult
    face_detected: bool = Field(description="False when no frame had a face and whole frames were judged.")
    verdict: VerdictLabel = Field(description="The most suspicious track's verdict.")
    fake_probability: float = Field(ge=0, le=1)
    confidence: float
    most_suspicious_track: int
    tracks: list[TrackResult]
    series: list[SeriesPoint] = Field(description="One point per sampled frame, in time order.")
    timings: Timings
    case: CaseLink | None = Field(
        None, description="The case recorded for this video, and the earlier one when the same bytes were seen."
    )
