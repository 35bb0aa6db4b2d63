"""Swapping the served model without a restart (`POST /v1/admin/reload`, `SIGHUP`): load, check and warm the new
file next to the serving one, then swap it in; a file that does not load or answers nonsense leaves the old one."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import time
from pathlib import Path

import anyio
from PIL import Image
from pydantic import BaseModel, Field

from detecteur.api.errors import ServiceError
from detecteur.api.state import ServiceState
from detecteur.inference.engine import Detector
from detecteur.model.file import ModelFileError, verify_model_file

log = logging.getLogger("detecteur.api")


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
