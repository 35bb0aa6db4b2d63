"""FastAPI application: the model is loaded once per process in `lifespan`, inference runs in a bounded
thread pool, every failure is a JSON error with a stable code. Routes are thin: the work is in `imaging`
(decoding untrusted bytes) and `engine` (faces and verdicts)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import math
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Body, Depends, FastAPI, File, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from detecteur import __version__
from detecteur.api.dashboard import mount_dashboard
from detecteur.api.errors import ServiceError
from detecteur.api.lifecycle import DrainGuard, Lifecycle
from detecteur.api.limits import BodySizeLimit, InferenceQueue, QueueFull
from detecteur.api.routes.cases import router as cases_router
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
from detecteur.api.security import API_KEY_NAME, AccessGuard, RequestTimeout, SecurityHeaders, display_filename
from detecteur.api.telemetry import Telemetry
from detecteur.cases.models import CaseLink
from detecteur.cases.store import CaseStore, NewCase, StoreError, open_store
from detecteur.config import Settings
from detecteur.inference.engine import EXPLAIN_NEEDS_TORCH, STABILITY_MARGIN, Detector, ImageVerdict
from detecteur.inference.evidence import evidence_report
from detecteur.inference.provenance import load_trust_anchors, read_provenance
from detecteur.inference.video import VideoLimits, VideoVerdict, judge_video
from detecteur.inputs.decode import InputError, decode_image, read_limited
from detecteur.model.file import ModelFileError, verify_model_file

log = logging.getLogger("detecteur.api")
T = TypeVar("T")

MULTIPART_OVERHEAD = 64 * 1024
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 408, 413, 415, 422, 429, 503)
}


__all__ = ["ServiceError", "ServiceState", "create_app", "reload_model"]
VIDEO_MEDIA_TYPES = {"MP4/MOV": "video/mp4", "WebM/Matroska": "video/webm", "AVI": "video/x-msvideo"}
THUMBNAIL_SIZE = 160
STORE_RETRY_SECONDS = 5.0
PURGE_EVERY_SECONDS = 3600.0


@dataclass
class ServiceState:
    settings: Settings
    telemetry: Telemetry = field(default_factory=Telemetry)
    detector: Detector | None = None
    load_error: str | None = None
    limiter: anyio.CapacityLimiter | None = None
    inference: InferenceQueue | None = None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    loader: Callable[[Settings], Detector] | None = None
    model_path: Path | None = None  # the model file serving now (changes with a reload)
    reloading: asyncio.Lock | None = None
    store: CaseStore | None = None
    store_error: str | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)


class ReloadRequest(BaseModel):
    model_path: Path | None = Field(
        None, description="A model file on the server to switch to; default: the configured one, read again."
    )


class ReloadResult(BaseModel):
    previous_version: str | None
    model_version: str
    model_path: str
    load_seconds: float


class ModelValidationError(Exception):
    """A freshly loaded model gave an answer no model may give."""


def validate_detector(detector: Detector) -> None:
    """A loaded model must judge a plain image into a probability before it may serve."""
    size = detector.metadata.input_size
    judged = detector.judge(Image.new("RGB", (size * 2, size * 2), (120, 110, 100)))
    for face in judged.faces:
        probability = face.verdict.fake_probability
        if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
            raise ModelValidationError(f"the model answered a fake probability of {probability}")


async def reload_model(state: ServiceState, model_path: Path | None = None) -> ReloadResult:
    """Load, check and warm a model file next to the serving one, then swap it in. Requests already running keep
    the model they started with; the next ones get the new one — none fails. A file that does not load or answers
    nonsense leaves the old model serving (ServiceError 422)."""
    if state.reloading is None or state.loader is None:
        raise ServiceError(503, "model_loading", "the service is still starting; retry shortly")
    if state.reloading.locked():
        raise ServiceError(409, "reload_in_progress", "a model reload is already running")
    async with state.reloading:
        path = model_path or state.settings.model_path
        settings = state.settings.model_copy(update={"model_path": path})
        loader = state.loader
        started = time.perf_counter()

        def load() -> Detector:
            verify_model_file(path)
            detector = loader(settings)
            validate_detector(detector)
            return detector

        try:
            detector = await anyio.to_thread.run_sync(load)
        except (ModelFileError, ModelValidationError, OSError, ValueError, RuntimeError) as error:
            log.error(json.dumps({"event": "reload_refused", "model_path": str(path), "error": str(error)}))
            raise ServiceError(422, "invalid_model", f"the model was not swapped in: {error}") from error
        previous = state.detector.metadata.version if state.detector is not None else None
        state.detector, state.model_path, state.load_error = detector, path, None
        result = ReloadResult(
            previous_version=previous,
            model_version=detector.metadata.version,
            model_path=str(path),
            load_seconds=round(time.perf_counter() - started, 3),
        )
        log.info(json.dumps({"event": "model_reloaded", **result.model_dump()}))
        return result


def install_sighup_reload(state: ServiceState, loop: asyncio.AbstractEventLoop) -> None:
    """SIGHUP reloads the configured model file (main thread only: `detecteur serve` calls it)."""

    def reload_in_background() -> None:
        async def run() -> None:
            try:
                await reload_model(state)
            except ServiceError as error:
                log.error("SIGHUP reload failed: %s", error.message)

        task = loop.create_task(run())
        state.background.add(task)
        task.add_done_callback(state.background.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_in_background)


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
    state = ServiceState(settings, loader=load_detector or _load_detector, model_path=settings.model_path)
    loader = state.loader
    assert loader is not None
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

        state.reloading = asyncio.Lock()

        async def load() -> None:
            try:
                state.detector = await anyio.to_thread.run_sync(loader, settings)
                log.info("model %s ready", state.detector.metadata.version)
            except (ModelFileError, OSError) as error:
                state.load_error = str(error)
                log.error("model not loaded: %s", error)

        async def keep_store() -> None:
            """Open (and migrate) the cases database, retrying while it cannot be reached; then erase expired
            images once an hour."""
            while state.store is None:
                try:
                    state.store = await anyio.to_thread.run_sync(
                        open_store,
                        settings.resolved_database_url,
                        timedelta(days=settings.image_retention_days),
                        settings.cases_synchronous_commit,
                    )
                    state.store_error = None
                    log.info("cases store ready (%s)", state.store.dialect)
                except (StoreError, SQLAlchemyError, OSError) as error:
                    state.store_error = str(error).splitlines()[0]
                    log.error("cases store unavailable, retrying in %g s: %s", STORE_RETRY_SECONDS, error)
                    await asyncio.sleep(STORE_RETRY_SECONDS)
            while True:
                try:
                    if purged := await anyio.to_thread.run_sync(state.store.purge_expired_images):
                        log.info(json.dumps({"event": "case_images_expired", "cases": purged}))
                except (StoreError, SQLAlchemyError) as error:
                    log.error("could not erase expired case images: %s", error)
                await asyncio.sleep(PURGE_EVERY_SECONDS)

        # Load in the background: the server answers /health (503) at once and turns ready when loaded.
        tasks = [asyncio.create_task(load())]
        if settings.cases:
            tasks.append(asyncio.create_task(keep_store()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if state.store is not None:
                state.store.close()

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
        api_keys=settings.named_api_keys,
        per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst,
    )
    # Counts the requests in flight and refuses new ones while draining (SIGTERM); inside CORS, so a browser can
    # read its 503.
    app.add_middleware(DrainGuard, lifecycle=state.lifecycle)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["*"],
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
        """Liveness and readiness: 200 once the model is loaded, 503 before (or if it cannot be), and 503 from the
        moment the server starts draining (SIGTERM), so that a load balancer stops sending it requests."""
        if state.lifecycle.draining:
            version = state.detector.metadata.version if state.detector is not None else None
            body = Health(status="draining", model_loaded=state.detector is not None, model_version=version)
            return JSONResponse(body.model_dump(), 503, headers={"Retry-After": "5"})
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
            figures=[f"/v1/model/figures/{path.name}" for path in _figures(state.model_path or settings.model_path)],
        )

    @app.get("/v1/model/figures/{name}", tags=["model"], responses={404: {"model": ErrorResponse}})
    async def model_figure(name: str) -> FileResponse:
        """A figure of the model card (PNG), drawn from the training run's files."""
        for path in _figures(state.model_path or settings.model_path):
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
        if explain and not detector.can_explain:
            raise ServiceError(501, "explain_unavailable", EXPLAIN_NEEDS_TORCH)
        results = [await _judge_upload(request, upload, detector, explain) for upload in uploads]
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
        result = await _judge_upload(request, file, detector)
        fake = threshold_centred(result.fake_probability, detector.metadata.threshold)
        is_fake = fake >= 0.5
        return SeedPredictResponse(
            result="Fake" if is_fake else "Real",
            confidence=round(100 * (fake if is_fake else 1 - fake), 2),
            raw_scores=SeedRawScores(fake=fake, real=1 - fake),
        )

    @app.post("/v1/predict/video", response_model=VideoResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def predict_video(
        request: Request,
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
        result.case = await record_case(
            request,
            NewCase(
                kind="video",
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                media_type=VIDEO_MEDIA_TYPES.get(result.video.container, "application/octet-stream"),
                filename=filename,
                verdict=result.verdict,
                fake_probability=result.fake_probability,
                model_version=result.model_version,
                response=result.model_dump(mode="json", exclude={"case"}),
                image=data if settings.store_images else None,
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

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResult,
        responses={**ERROR_RESPONSES, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
        tags=["service"],
    )
    async def admin_reload(
        x_admin_key: Annotated[str | None, Header(description="The server's DETECTEUR_ADMIN_KEY.")] = None,
        body: Annotated[ReloadRequest | None, Body()] = None,
    ) -> ReloadResult:
        """Load a model file (by default the configured one, read again), check that it judges an image, and swap
        it in without a restart; requests in flight finish on the old model. `SIGHUP` does the same."""
        if settings.admin_key is None:
            raise ServiceError(404, "not_found", "admin routes are off: set DETECTEUR_ADMIN_KEY to enable them")
        expected = hashlib.sha256(settings.admin_key.get_secret_value().encode()).digest()
        presented = hashlib.sha256((x_admin_key or "").encode()).digest()
        if not hmac.compare_digest(expected, presented):
            raise ServiceError(403, "forbidden", "send the admin key in the X-Admin-Key header")
        return await reload_model(state, body.model_path if body else None)

    app.include_router(cases_router)

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(state.telemetry.exposition(), media_type="text/plain; version=0.0.4")

    async def record_case(request: Request, case: NewCase) -> CaseLink | None:
        """Record a judged file in the cases store; the answer links to it (and to the earlier case of the same
        bytes). A store that is off or down costs the record, never the answer: the failure is logged and counted."""
        store = state.store
        if store is None:
            if settings.cases:
                state.telemetry.case_write_errors.inc()
            return None
        case = replace(case, api_key_name=request.scope.get(API_KEY_NAME))
        started = time.perf_counter()
        try:
            case_id, seen = await anyio.to_thread.run_sync(store.record, case)
        except (StoreError, SQLAlchemyError) as error:
            state.telemetry.case_write_errors.inc()
            log.error(json.dumps({"event": "case_not_recorded", "sha256": case.sha256, "error": str(error)[:500]}))
            return None
        state.telemetry.case_write_seconds.observe(time.perf_counter() - started)
        return CaseLink(id=case_id, seen_before=seen)

    async def _judge_upload(
        request: Request, upload: UploadFile, detector: Detector, explain: bool = False
    ) -> ImageResult:
        started = time.perf_counter()
        data = read_limited(upload.file, settings.max_upload_bytes)
        media_type = "application/octet-stream"
        thumbnail: bytes | None = None

        def work() -> tuple[ImageResult, ImageVerdict]:
            nonlocal media_type, thumbnail
            # Evidence in the file itself is read from the uploaded bytes, before anything decodes or re-encodes
            # them; `read_limited` has held them to the same size limit as decoding.
            provenance = read_provenance(data, trust_anchors)
            read_at = time.perf_counter()
            decoded = decode_image(data, max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes)
            media_type = Image.MIME.get(decoded.format.upper(), media_type)
            if settings.cases and settings.case_thumbnails:
                thumbnail = _thumbnail(decoded.image)
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
        metadata = detector.metadata
        # Grad-CAM overlays are drawn on the face itself: kept in the record only where images are kept.
        recorded = result.model_dump(mode="json", exclude={"case"})
        if not settings.store_images:
            for face in recorded["faces"]:
                face["heatmap_png"] = None
        result.case = await record_case(
            request,
            NewCase(
                kind="image",
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                media_type=media_type,
                filename=result.filename,
                verdict=result.verdict,
                fake_probability=result.fake_probability,
                model_version=metadata.version,
                response=recorded
                | {
                    "model_version": metadata.version,
                    "threshold": metadata.threshold,
                    "borderline_band": list(metadata.borderline_band),
                },
                thumbnail=thumbnail,
                image=data if settings.store_images else None,
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


def _thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _load_detector(settings: Settings) -> Detector:
    detector = Detector(
        settings.model_path,
        device=settings.device,
        batch_size=settings.batch_size,
        backend=settings.backend,
        onnx_path=settings.onnx_path,
        threads=settings.threads_per_inference,
        batch_window_ms=settings.batch_window_ms,
        precision=settings.precision,
    )
    detector.warm_up()
    return detector


def _figures(model_path: Path) -> list[Path]:
    folder = model_path.parent / "figures"
    return sorted(folder.glob("*.png")) if folder.is_dir() else []
