"""FastAPI application: the model is loaded once per process in `lifespan`, inference runs in a bounded
thread pool, every failure is a JSON error with a stable code. Routes are thin: the work is in `imaging`
(decoding untrusted bytes) and `engine` (faces and verdicts)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from detecteur import __version__
from detecteur.api.dashboard import mount_dashboard
from detecteur.api.limits import BodySizeLimit, InferenceQueue, QueueFull
from detecteur.api.schemas import (
    Box,
    ErrorResponse,
    Evidence,
    FaceResult,
    Health,
    ImageResult,
    ModelInfo,
    PredictResponse,
    SeedPredictResponse,
    SeedRawScores,
    SeriesPoint,
    StabilityResult,
    Timings,
    TrackFaceResult,
    TrackResult,
    VideoInfoResult,
    VideoResponse,
)
from detecteur.api.security import AccessGuard, RequestTimeout, SecurityHeaders, display_filename
from detecteur.api.telemetry import Telemetry
from detecteur.config import Settings
from detecteur.engine import STABILITY_MARGIN, Detector, ImageVerdict
from detecteur.evidence import evidence_report
from detecteur.imaging import InputError, decode_image, read_limited
from detecteur.model import ModelFileError, verify_model_file
from detecteur.provenance import load_trust_anchors, read_provenance
from detecteur.video import VideoLimits, VideoVerdict, judge_video

log = logging.getLogger("detecteur.api")
T = TypeVar("T")

MULTIPART_OVERHEAD = 64 * 1024
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 408, 413, 415, 422, 429, 503)
}


class ServiceError(Exception):
    """An error the API reports as `{"error": {"code", "message"}}` with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class ServiceState:
    settings: Settings
    telemetry: Telemetry = field(default_factory=Telemetry)
    detector: Detector | None = None
    load_error: str | None = None
    limiter: anyio.CapacityLimiter | None = None
    inference: InferenceQueue | None = None


def ready_detector(request: Request) -> Detector:
    """The loaded model, or a 503 saying whether it is still loading or could not be loaded."""
    state: ServiceState = request.app.state.service
    if state.detector is None:
        if state.load_error:
            raise ServiceError(503, "model_unavailable", f"the model could not be loaded: {state.load_error}")
        raise ServiceError(503, "model_loading", "the model is still loading; retry shortly")
    return state.detector


ReadyDetector = Annotated[Detector, Depends(ready_detector)]


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(
    settings: Settings | None = None, load_detector: Callable[[Settings], Detector] | None = None
) -> FastAPI:
    """The service. `load_detector` replaces loading `settings.model_path` (tests inject a small model)."""
    settings = settings or Settings()
    state = ServiceState(settings)
    loader = load_detector or _load_detector
    trust_anchors = load_trust_anchors(settings.c2pa_trust_anchors)
    margin = settings.stability_margin or STABILITY_MARGIN

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.limiter = anyio.CapacityLimiter(settings.inference_threads)
        state.inference = InferenceQueue(state.limiter, settings.max_queue)
        # A model file that is there but damaged or tampered with must never serve: refuse to start. A missing
        # one is reported by /health (503) instead — it may be a volume not mounted yet.
        if settings.model_path.exists():
            await anyio.to_thread.run_sync(verify_model_file, settings.model_path)

        async def load() -> None:
            try:
                state.detector = await anyio.to_thread.run_sync(loader, settings)
                log.info("model %s ready", state.detector.metadata.version)
            except (ModelFileError, OSError) as error:
                state.load_error = str(error)
                log.error("model not loaded: %s", error)

        # Load in the background: the server answers /health (503) at once and turns ready when loaded.
        loading = asyncio.create_task(load())
        try:
            yield
        finally:
            loading.cancel()

    app = FastAPI(
        title="Détecteur",
        summary="Is the face in this image authentic or synthetic / manipulated — how sure, and why.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.service = state
    # Inside CORS, so that preflights pass and refusals (401, 429, timeouts) still carry CORS headers.
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_seconds)
    app.add_middleware(
        AccessGuard,
        api_keys=[key.get_secret_value() for key in settings.api_keys],
        per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst,
    )
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
    )
    app.middleware("http")(state.telemetry.middleware)
    # Room for every allowed file at its limit plus the multipart framing.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_files * settings.max_upload_bytes + MULTIPART_OVERHEAD,
        max_bytes_by_path={
            "/predict": settings.max_upload_bytes + MULTIPART_OVERHEAD,
            "/v1/predict/video": settings.video_max_bytes + MULTIPART_OVERHEAD,
        },
    )
    # Outermost: every response gets them, the body-limit refusals included.
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
        headers = {"Retry-After": "5"} if error.status == 503 else None
        return _error(error.status, error.code, error.message, headers)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, error: InputError) -> JSONResponse:
        return _error(error.http_status, error.code, str(error))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        return _error(422, "invalid_request", problems or "the request does not match the API")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "http_error"
        )
        return _error(error.status_code, code, str(error.detail), headers=error.headers)

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, tags=["service"])
    async def health() -> JSONResponse:
        """Liveness and readiness: 200 once the model is loaded, 503 before (or if it cannot be)."""
        if state.detector is not None:
            body = Health(status="ok", model_loaded=True, model_version=state.detector.metadata.version)
            return JSONResponse(body.model_dump())
        status = "unavailable" if state.load_error else "loading"
        return JSONResponse(Health(status=status, model_loaded=False, detail=state.load_error).model_dump(), 503)

    @app.get("/v1/model", response_model=ModelInfo, responses=ERROR_RESPONSES, tags=["model"])
    async def model_info(detector: ReadyDetector) -> ModelInfo:
        """The running model: what it is, its calibration, and its measured figures."""
        metadata = detector.metadata
        return ModelInfo(
            **metadata.model_dump(include=set(ModelInfo.model_fields) - {"figures"}),
            figures=[f"/v1/model/figures/{path.name}" for path in _figures(settings)],
        )

    @app.get("/v1/model/figures/{name}", tags=["model"], responses={404: {"model": ErrorResponse}})
    async def model_figure(name: str) -> FileResponse:
        """A figure of the model card (PNG), drawn from the training run's files."""
        for path in _figures(settings):
            if path.name == name:
                return FileResponse(path, media_type="image/png")
        raise ServiceError(404, "not_found", f"no figure named {name!r}")

    async def run_inference(work: Callable[[], T]) -> T:
        """`work` in the bounded inference pool; a full queue is a 503 + Retry-After, not a wait without bound."""
        if state.inference is None:  # only before the lifespan has run
            raise ServiceError(503, "model_loading", "the service is still starting; retry shortly")
        try:
            return await state.inference.run(work)
        except QueueFull as full:
            raise ServiceError(503, "overloaded", str(full)) from full

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def predict(
        request: Request,
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
        if len(uploads) > settings.max_files:
            raise ServiceError(413, "too_many_files", f"{len(uploads)} files sent; the limit is {settings.max_files}")
        results = [await _judge_upload(upload, detector, explain) for upload in uploads]
        metadata = detector.metadata
        return PredictResponse(
            model_version=metadata.version,
            threshold=metadata.threshold,
            borderline_band=metadata.borderline_band,
            results=results,
        )

    @app.post("/predict", response_model=SeedPredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def seed_predict(
        request: Request, detector: ReadyDetector, file: Annotated[UploadFile, File(description="One image.")]
    ) -> SeedPredictResponse:
        """Compatibility with the seed's web client: `result` is "Fake" when the most suspicious face is at or
        above the model's threshold. The threshold is folded into the calibration (a logit shift that puts it at
        0.5), so `confidence`, the percent probability of the reported result, is never under 50, and
        `raw_scores` are those threshold-centred probabilities."""
        # One verdict for two files would be attributed to whichever the client thinks it sent: refuse instead.
        if len((await request.form()).getlist("file")) > 1:
            raise ServiceError(413, "too_many_files", "this route judges one file; send several to /v1/predict")
        result = await _judge_upload(file, detector)
        fake = threshold_centred(result.fake_probability, detector.metadata.threshold)
        is_fake = fake >= 0.5
        return SeedPredictResponse(
            result="Fake" if is_fake else "Real",
            confidence=round(100 * (fake if is_fake else 1 - fake), 2),
            raw_scores=SeedRawScores(fake=fake, real=1 - fake),
        )

    @app.post("/v1/predict/video", response_model=VideoResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def predict_video(
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
        data = await anyio.to_thread.run_sync(read_limited, file.file, settings.video_max_bytes)
        limits = VideoLimits.from_settings(settings)
        judged = await run_inference(lambda: judge_video(data, detector, limits))
        filename = display_filename(file.filename)
        result = _video_response(filename, judged, detector, (time.perf_counter() - started) * 1000)
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

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(state.telemetry.exposition(), media_type="text/plain; version=0.0.4")

    async def _judge_upload(upload: UploadFile, detector: Detector, explain: bool = False) -> ImageResult:
        started = time.perf_counter()
        data = read_limited(upload.file, settings.max_upload_bytes)

        def work() -> tuple[ImageResult, ImageVerdict]:
            # Evidence in the file itself is read from the uploaded bytes, before anything decodes or re-encodes
            # them; `read_limited` has held them to the same size limit as decoding.
            provenance = read_provenance(data, trust_anchors)
            read_at = time.perf_counter()
            decoded = decode_image(data, max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes)
            decoded_at = time.perf_counter()
            judged = detector.judge(decoded.image, explain=explain, stability=settings.stability_check, margin=margin)
            top = judged.most_suspicious.verdict
            total = (time.perf_counter() - started) * 1000
            return (
                ImageResult(
                    filename=display_filename(upload.filename),
                    width=decoded.width,
                    height=decoded.height,
                    face_detected=judged.face_detected,
                    verdict=top.verdict,
                    fake_probability=top.fake_probability,
                    confidence=top.confidence,
                    faces=[
                        FaceResult(
                            box=Box(**asdict(face.box)) if face.box else None,
                            heatmap_png=base64.b64encode(face.heatmap_png).decode() if face.heatmap_png else None,
                            stability=StabilityResult(**asdict(face.stability)) if face.stability else None,
                            **asdict(face.verdict),
                        )
                        for face in judged.faces
                    ],
                    evidence=Evidence.model_validate(evidence_report(top, judged.face_detected, provenance)),
                    timings=Timings(
                        provenance_ms=(read_at - started) * 1000,
                        decode_ms=(decoded_at - read_at) * 1000,
                        faces_ms=judged.faces_ms,
                        model_ms=judged.model_ms,
                        total_ms=total,
                    ),
                ),
                judged,
            )

        result, judged = await run_inference(work)
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

    # Last, so every API route above wins over a file of the same name.
    mount_dashboard(app, settings.dashboard_dir)
    return app


def _video_response(filename: str | None, judged: VideoVerdict, detector: Detector, total_ms: float) -> VideoResponse:
    metadata, info, top = detector.metadata, judged.info, judged.most_suspicious
    series = [SeriesPoint(time_s=time_s, fake_probability={}) for time_s in info.sampled_times_s]
    for track in judged.tracks:
        for face in track.faces:
            series[face.sample].fake_probability[str(track.track_id)] = face.verdict.fake_probability
    return VideoResponse(
        model_version=metadata.version,
        threshold=metadata.threshold,
        borderline_band=metadata.borderline_band,
        filename=filename,
        video=VideoInfoResult(
            container=info.container,
            codec=info.codec,
            width=info.width,
            height=info.height,
            duration_s=info.duration_s,
            fps=info.fps,
            frames_sampled=info.frames_sampled,
            sample_fps=info.sample_fps,
        ),
        face_detected=judged.face_detected,
        verdict=top.verdict.verdict,
        fake_probability=top.mean_fake_probability,
        confidence=top.verdict.confidence,
        most_suspicious_track=top.track_id,
        tracks=[
            TrackResult(
                track_id=track.track_id,
                frames_seen=len(track.faces),
                first_s=track.faces[0].time_s,
                last_s=track.faces[-1].time_s,
                fake_probability=track.mean_fake_probability,
                fraction_over_threshold=track.fraction_over_threshold,
                verdict=track.verdict.verdict,
                confidence=track.verdict.confidence,
                faces=[
                    TrackFaceResult(
                        sample=face.sample,
                        time_s=face.time_s,
                        box=Box(**asdict(face.box)) if face.box else None,
                        fake_probability=face.verdict.fake_probability,
                    )
                    for face in track.faces
                ],
            )
            for track in judged.tracks
        ],
        series=series,
        timings=Timings(
            decode_ms=judged.decode_ms, faces_ms=judged.faces_ms, model_ms=judged.model_ms, total_ms=total_ms
        ),
    )


def threshold_centred(fake_probability: float, threshold: float) -> float:
    """The fake probability with the decision threshold folded into the calibration: a shift of the logit by
    logit(threshold), so that the threshold maps to exactly 0.5 and the order of scores is kept."""
    eps = 1e-12
    p = min(max(fake_probability, eps), 1 - eps)
    t = min(max(threshold, eps), 1 - eps)
    shifted = math.log(p / (1 - p)) - math.log(t / (1 - t))
    return 1 / (1 + math.exp(-shifted)) if shifted >= 0 else math.exp(shifted) / (1 + math.exp(shifted))


def _load_detector(settings: Settings) -> Detector:
    detector = Detector(
        settings.model_path,
        device=settings.device,
        batch_size=settings.batch_size,
        backend=settings.backend,
        onnx_path=settings.onnx_path,
        threads=settings.threads_per_inference,
    )
    detector.warm_up()
    return detector


def _figures(settings: Settings) -> list[Path]:
    folder = settings.model_path.parent / "figures"
    return sorted(folder.glob("*.png")) if folder.is_dir() else []
