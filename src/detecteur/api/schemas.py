"""The API contract: every response and error body has a schema, so `/docs` is the real API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

VerdictLabel = Literal["authentic", "borderline", "synthetic"]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `unsupported_format`.")
    message: str = Field(description="What went wrong, in plain words.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "loading", "unavailable"]
    model_loaded: bool
    model_version: str | None = None
    detail: str | None = None


class Box(BaseModel):
    x: int
    y: int
    width: int
    height: int
    score: float = Field(description="Face detector confidence.")


class FaceResult(BaseModel):
    box: Box | None = Field(description="The face in image pixels; null when the whole image was judged.")
    fake_probability: float = Field(ge=0, le=1, description="Calibrated probability that the face is synthetic.")
    verdict: VerdictLabel
    confidence: float = Field(ge=0.5, le=1, description="max(softmax): probability of the more likely class.")
    heatmap_png: str | None = Field(None, description="Grad-CAM overlay (base64 PNG) when explain=true.")


class Timings(BaseModel):
    decode_ms: float
    faces_ms: float
    model_ms: float
    total_ms: float


class ImageResult(BaseModel):
    filename: str | None
    width: int
    height: int
    face_detected: bool = Field(description="False when no face was found and the whole image was judged.")
    verdict: VerdictLabel = Field(description="The most suspicious face's verdict.")
    fake_probability: float = Field(ge=0, le=1)
    confidence: float
    faces: list[FaceResult]
    timings: Timings


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
    confidence: float = Field(ge=0, le=100, description="Percent: probability of the reported result.")
    raw_scores: SeedRawScores


class ModelInfo(BaseModel):
    version: str
    arch: str
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
    figures: list[str] = Field(description="URLs of the model card's figures.")
