"""The service: the FastAPI application, its middleware and error handlers, and the lifespan that loads the model
once per process (in the background: `/health` answers 503 until it is ready) and keeps the cases store open.
The routes are in `api/routes/`, one `APIRouter` per concern, and get what they share through the dependencies of
`api/state.py`; the work itself is in `inputs/` (decoding untrusted bytes) and `inference/` (faces and verdicts)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from detecteur import __version__
from detecteur.api.dashboard import mount_dashboard
from detecteur.api.errors import ServiceError
from detecteur.api.lifecycle import DrainGuard
from detecteur.api.limits import BodySizeLimit, InferenceQueue
from detecteur.api.routes import admin, model, predict, service
from detecteur.api.routes.cases import router as cases_router
from detecteur.api.security import AccessGuard, RequestTimeout, SecurityHeaders
from detecteur.api.state import ServiceState
from detecteur.api.telemetry import TelemetryMiddleware
from detecteur.cases.store import StoreError, open_store
from detecteur.config import Settings
from detecteur.inference.engine import STABILITY_MARGIN, Detector
from detecteur.inference.provenance import load_trust_anchors
from detecteur.inputs.decode import InputError
from detecteur.model.file import ModelFileError, verify_model_file

log = logging.getLogger("detecteur.api")

MULTIPART_OVERHEAD = 64 * 1024
STORE_RETRY_SECONDS = 5.0
PURGE_EVERY_SECONDS = 3600.0


def create_app(
    settings: Settings | None = None, load_detector: Callable[[Settings], Detector] | None = None
) -> FastAPI:
    """The service. `load_detector` replaces loading `settings.model_path` (tests inject a small model)."""
    settings = settings or Settings()
    state = ServiceState(
        settings,
        loader=load_detector or _load_detector,
        model_path=settings.model_path,
        trust_anchors=load_trust_anchors(settings.c2pa_trust_anchors),
        margin=settings.stability_margin or STABILITY_MARGIN,
    )
    app = FastAPI(
        title="Détecteur",
        summary="Is the face in this image authentic or synthetic / manipulated — how sure, and why.",
        version=__version__,
        lifespan=_lifespan(state),
    )
    app.state.service = state
    _add_middleware(app, state)
    _add_error_handlers(app)
    app.include_router(service.router)
    app.include_router(model.router)
    app.include_router(predict.router)
    app.include_router(admin.router)
    app.include_router(cases_router)
    app.include_router(service.metrics_router)
    # Last, so every API route above wins over a file of the same name.
    mount_dashboard(app, settings.dashboard_dir)
    return app


def _add_middleware(app: FastAPI, state: ServiceState) -> None:
    settings = state.settings
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
    app.add_middleware(TelemetryMiddleware, telemetry=state.telemetry)
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


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers `{"error": {"code", "message"}}`, whichever layer raised it."""

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


def _lifespan(state: ServiceState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    settings = state.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.limiter = anyio.CapacityLimiter(settings.inference_threads)
        state.inference = InferenceQueue(state.limiter, settings.max_queue)
        # A model file that is there but damaged or tampered with must never serve: refuse to start. A missing
        # one is reported by /health (503) instead — it may be a volume not mounted yet.
        if settings.model_path.exists():
            await anyio.to_thread.run_sync(verify_model_file, settings.model_path)
        state.reloading = asyncio.Lock()
        # Load in the background: the server answers /health (503) at once and turns ready when loaded.
        tasks = [asyncio.create_task(_load(state))]
        if settings.cases:
            tasks.append(asyncio.create_task(_keep_store(state)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if state.store is not None:
                state.store.close()

    return lifespan


async def _load(state: ServiceState) -> None:
    assert state.loader is not None
    try:
        state.detector = await anyio.to_thread.run_sync(state.loader, state.settings)
        log.info("model %s ready", state.detector.metadata.version)
    except (ModelFileError, OSError) as error:
        state.load_error = str(error)
        log.error("model not loaded: %s", error)


async def _keep_store(state: ServiceState) -> None:
    """Open (and migrate) the cases database, retrying while it cannot be reached; then erase expired images once
    an hour."""
    settings = state.settings
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
