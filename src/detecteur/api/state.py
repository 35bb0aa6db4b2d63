"""What the routes share, handed to them as FastAPI dependencies: the service's state, the loaded model (or a 503),
the bounded inference pool and the cases store."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError

from detecteur.api.errors import ServiceError
from detecteur.api.lifecycle import Lifecycle
from detecteur.api.limits import InferenceQueue, QueueFull
from detecteur.api.security import API_KEY_NAME
from detecteur.api.telemetry import Telemetry
from detecteur.cases.models import CaseLink
from detecteur.cases.store import CaseStore, NewCase, StoreError
from detecteur.config import Settings
from detecteur.inference.engine import Detector

log = logging.getLogger("detecteur.api")
T = TypeVar("T")


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
    # Read once at start: the C2PA trust anchors and the stability check's margin.
    trust_anchors: str | None = None
    margin: float = 0.0


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(service_state)]


def ready_detector(request: Request) -> Detector:
    """The loaded model, or a 503 saying whether it is still loading or could not be loaded."""
    state: ServiceState = request.app.state.service
    if state.detector is None:
        if state.load_error:
            raise ServiceError(503, "model_unavailable", f"the model could not be loaded: {state.load_error}")
        raise ServiceError(503, "model_loading", "the model is still loading; retry shortly")
    return state.detector


ReadyDetector = Annotated[Detector, Depends(ready_detector)]


async def run_inference(state: ServiceState, work: Callable[[], T]) -> T:
    """`work` in the bounded inference pool; a full queue is a 503 + Retry-After, not a wait without bound."""
    if state.inference is None:  # only before the lifespan has run
        raise ServiceError(503, "model_loading", "the service is still starting; retry shortly")
    try:
        return await state.inference.run(work)
    except QueueFull as full:
        raise ServiceError(503, "overloaded", str(full)) from full


async def record_case(state: ServiceState, request: Request, case: NewCase) -> CaseLink | None:
    """Record a judged file in the cases store; the answer links to it (and to the earlier case of the same
    bytes). A store that is off or down costs the record, never the answer: the failure is logged and counted."""
    store = state.store
    if store is None:
        if state.settings.cases:
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
