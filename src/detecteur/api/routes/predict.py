"""Judging uploads: images (`/v1/predict`, the seed client's `/predict`) and videos (`/v1/predict/video`). Each
judged file is answered, then recorded in the cases store."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Query, Request, UploadFile
from PIL import Image

from detecteur.api.errors import ERROR_RESPONSES, ServiceError
from detecteur.api.responses import image_result, video_response
from detecteur.api.schemas import (
    ImageResult,
    PredictResponse,
    SeedPredictResponse,
    SeedRawScores,
    Timings,
    VideoResponse,
)
from detecteur.api.security import display_filename
from detecteur.api.state import ReadyDetector, ServiceState, State, record_case, run_inference
from detecteur.cases.store import NewCase
from detecteur.config import Settings
from detecteur.inference.engine import EXPLAIN_NEEDS_TORCH, Detector, ImageVerdict
from detecteur.inference.provenance import read_provenance
from detecteur.inference.video import judge_video
from detecteur.inputs.decode import decode_image, read_limited
from detecteur.inputs.video_frames import VideoLimits

log = logging.getLogger("detecteur.api")
router = APIRouter()

VIDEO_MEDIA_TYPES = {"MP4/MOV": "video/mp4", "WebM/Matroska": "video/webm", "AVI": "video/x-msvideo"}
THUMBNAIL_SIZE = 160


@router.post("/v1/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
async def predict(
    request: Request,
    state: State,
    detector: ReadyDetector,
    file: Annotated[UploadFile | None, File(description="One image.")] = None,
    files: Annotated[list[UploadFile] | None, File(description="Several images.")] = None,
    explain: Annotated[bool, Query(description="Add a Grad-CAM heatmap (base64 PNG) per face.")] = False,
) -> PredictResponse:
    """Find the faces in each image and judge every one. An image's verdict is its most suspicious face;
    with no face found, the whole image is judged and `face_detected` is false."""
    uploads = ([file] if file else []) + (files or [])
    if not uploads:
        raise ServiceError(422, "missing_file", "send an image in the multipart field 'file' (or 'files')")
    max_files = state.settings.max_files
    if len(uploads) > max_files:
        raise ServiceError(413, "too_many_files", f"{len(uploads)} files sent; the limit is {max_files}")
    if explain and not detector.can_explain:
        raise ServiceError(501, "explain_unavailable", EXPLAIN_NEEDS_TORCH)
    results = [await _judge_upload(state, request, upload, detector, explain) for upload in uploads]
    metadata = detector.metadata
    return PredictResponse(
        model_version=metadata.version,
        threshold=metadata.threshold,
        borderline_band=metadata.borderline_band,
        results=results,
    )


@router.post("/predict", response_model=SeedPredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
async def seed_predict(
    request: Request,
    state: State,
    detector: ReadyDetector,
    file: Annotated[UploadFile, File(description="One image.")],
) -> SeedPredictResponse:
    """Compatibility with the seed's web client: `result` is "Fake" when the most suspicious face is at or
    above the model's threshold. The threshold is folded into the calibration (a logit shift that puts it at
    0.5), so `confidence`, the percent probability of the reported result, is never under 50, and
    `raw_scores` are those threshold-centred probabilities."""
    # One verdict for two files would be attributed to whichever the client thinks it sent: refuse instead.
    if len((await request.form()).getlist("file")) > 1:
        raise ServiceError(413, "too_many_files", "this route judges one file; send several to /v1/predict")
    result = await _judge_upload(state, request, file, detector)
    fake = threshold_centred(result.fake_probability, detector.metadata.threshold)
    is_fake = fake >= 0.5
    return SeedPredictResponse(
        result="Fake" if is_fake else "Real",
        confidence=round(100 * (fake if is_fake else 1 - fake), 2),
        raw_scores=SeedRawScores(fake=fake, real=1 - fake),
    )


@router.post("/v1/predict/video", response_model=VideoResponse, responses=ERROR_RESPONSES, tags=["predict"])
async def predict_video(
    request: Request,
    state: State,
    detector: ReadyDetector,
    file: Annotated[UploadFile | None, File(description="One video: MP4, MOV, WebM or AVI.")] = None,
) -> VideoResponse:
    """Sample frames uniformly, find and follow every face across them, and judge each face with the
    image model. Per track: the mean calibrated fake probability, the share of frames over the threshold
    and a verdict; the video's verdict is its most suspicious track. With no face in any frame, whole
    frames are judged and `face_detected` is false."""
    if file is None:
        raise ServiceError(422, "missing_file", "send a video in the multipart field 'file'")
    started = time.perf_counter()
    # A video upload can be large: read the spooled file off the event loop, then decode in the pool.
    settings = state.settings
    data = await anyio.to_thread.run_sync(read_limited, file.file, settings.video_max_bytes)
    limits = VideoLimits.from_settings(settings)
    judged = await run_inference(state, lambda: judge_video(data, detector, limits))
    filename = display_filename(file.filename)
    result = video_response(filename, judged, detector.metadata, (time.perf_counter() - started) * 1000)
    result.case = await record_case(
        state,
        request,
        _new_case(
            settings,
            "video",
            data,
            VIDEO_MEDIA_TYPES.get(result.video.container, "application/octet-stream"),
            result,
            result.model_dump(mode="json", exclude={"case"}),
        ),
    )
    log.info(
        json.dumps(
            {
                "event": "judged_video",
                "verdict": result.verdict,
                "tracks": len(result.tracks),
                "face_detected": result.face_detected,
                "frames_sampled": result.video.frames_sampled,
                "total_ms": round(result.timings.total_ms, 1),
            }
        )
    )
    return result


async def _judge_upload(
    state: ServiceState, request: Request, upload: UploadFile, detector: Detector, explain: bool = False
) -> ImageResult:
    settings = state.settings
    started = time.perf_counter()
    data = read_limited(upload.file, settings.max_upload_bytes)
    media_type = "application/octet-stream"
    thumbnail: bytes | None = None

    def work() -> tuple[ImageResult, ImageVerdict]:
        nonlocal media_type, thumbnail
        # Evidence in the file itself is read from the uploaded bytes, before anything decodes or re-encodes
        # them; `read_limited` has held them to the same size limit as decoding.
        provenance = read_provenance(data, state.trust_anchors)
        read_at = time.perf_counter()
        decoded = decode_image(data, max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes)
        media_type = Image.MIME.get(decoded.format.upper(), media_type)
        if settings.cases and settings.case_thumbnails:
            thumbnail = _thumbnail(decoded.image)
        decoded_at = time.perf_counter()
        judged = detector.judge(decoded.image, explain=explain, stability=settings.stability_check, margin=state.margin)
        timings = Timings(
            provenance_ms=(read_at - started) * 1000,
            decode_ms=(decoded_at - read_at) * 1000,
            faces_ms=judged.faces_ms,
            model_ms=judged.model_ms,
            total_ms=(time.perf_counter() - started) * 1000,
        )
        filename = display_filename(upload.filename)
        return image_result(filename, (decoded.width, decoded.height), judged, provenance, timings), judged

    result, judged = await run_inference(state, work)
    metadata = detector.metadata
    # Grad-CAM overlays are drawn on the face itself: kept in the record only where images are kept.
    recorded = result.model_dump(mode="json", exclude={"case"})
    if not settings.store_images:
        for face in recorded["faces"]:
            face["heatmap_png"] = None
    result.case = await record_case(
        state,
        request,
        _new_case(
            settings,
            "image",
            data,
            media_type,
            result,
            recorded
            | {
                "model_version": metadata.version,
                "threshold": metadata.threshold,
                "borderline_band": list(metadata.borderline_band),
            },
            thumbnail,
        ),
    )
    state.telemetry.model_seconds.observe((judged.faces_ms + judged.model_ms) / 1000)
    state.telemetry.faces_per_image.observe(len(judged.faces) if judged.face_detected else 0)
    log.info(
        json.dumps(
            {
                "event": "judged",
                "verdict": result.verdict,
                "faces": len(result.faces),
                "face_detected": result.face_detected,
                "total_ms": round(result.timings.total_ms, 1),
            }
        )
    )
    return result


def _new_case(
    settings: Settings,
    kind: str,
    data: bytes,
    media_type: str,
    result: ImageResult | VideoResponse,
    response: dict[str, Any],
    thumbnail: bytes | None = None,
) -> NewCase:
    """The cases-store record of a judged upload: its bytes' digest, the answer given, and the bytes themselves
    only where images are kept."""
    return NewCase(
        kind=kind,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        media_type=media_type,
        filename=result.filename,
        verdict=result.verdict,
        fake_probability=result.fake_probability,
        model_version=response["model_version"],
        response=response,
        thumbnail=thumbnail,
        image=data if settings.store_images else None,
    )


def threshold_centred(fake_probability: float, threshold: float) -> float:
    """The fake probability with the decision threshold folded into the calibration: a shift of the logit by
    logit(threshold), so that the threshold maps to exactly 0.5 and the order of scores is kept."""
    eps = 1e-12
    p = min(max(fake_probability, eps), 1 - eps)
    t = min(max(threshold, eps), 1 - eps)
    shifted = math.log(p / (1 - p)) - math.log(t / (1 - t))
    return 1 / (1 + math.exp(-shifted)) if shifted >= 0 else math.exp(shifted) / (1 + math.exp(shifted))


def _thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
