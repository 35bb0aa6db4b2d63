"""`detecteur serve`: uvicorn with the two signals operations need.

- SIGTERM drains (see `lifecycle`): /health and new requests answer 503 at once, the requests already accepted
  finish, then the server stops — after at least `drain_seconds` (for a load balancer to notice), at most
  `drain_timeout_seconds`. A second SIGTERM, or SIGINT (Ctrl-C), stops it the ordinary uvicorn way.
- SIGHUP reloads the model file, checked before it replaces the serving one (`app.reload_model`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from detecteur.api.main import create_app
from detecteur.api.reload import install_sighup_reload
from detecteur.api.state import ServiceState
from detecteur.config import Settings
from detecteur.model.serving_session import tune_allocator

log = logging.getLogger("detecteur.api")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self.state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        install_sighup_reload(self.state, self._loop)
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain is None and self._loop is not None and not self.should_exit:
            # Runs in the main thread, between two steps of the event loop: schedule the drain on the loop.
            self.state.lifecycle.begin_drain()
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        assert self._loop is not None
        self._drain = self._loop.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        settings = self.state.settings
        lifecycle = self.state.lifecycle
        log.info(json.dumps({"event": "draining", "in_flight": lifecycle.in_flight}))
        left = await lifecycle.wait_idle(settings.drain_seconds, settings.drain_timeout_seconds)
        log.info(json.dumps({"event": "drained", "still_running": left}))
        self.should_exit = True


def build_server(settings: Settings, app: FastAPI | None = None) -> DrainingServer:
    app = app or create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        # Whatever the drain left running still gets this long once uvicorn itself stops.
        timeout_graceful_shutdown=max(1, int(settings.request_timeout_seconds)),
    )
    return DrainingServer(config, app.state.service)


def serve(settings: Settings) -> None:
    tune_allocator()  # before any thread allocates: a bounded heap for a long-running server
    build_server(settings).run()
