"""Draining on SIGTERM: from the moment it starts, /health answers 503 (a load balancer stops sending) and every
new request gets 503 + Retry-After + `Connection: close`, while the requests already accepted run to the end.
`detecteur.api.server` starts the drain on SIGTERM and stops the server once `wait_idle` returns."""

from __future__ import annotations

import time

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from detecteur.api.limits import send_json_error

DRAIN_RETRY_AFTER_SECONDS = 5


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.drain_started: float | None = None

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            self.drain_started = time.monotonic()

    async def wait_idle(self, minimum_seconds: float, timeout_seconds: float) -> int:
        """Returns once no accepted request is left and `minimum_seconds` have passed since the drain began, or
        after `timeout_seconds`; the number of requests still running then (0 unless the timeout hit)."""
        started = self.drain_started or time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if (self.in_flight == 0 and elapsed >= minimum_seconds) or elapsed >= timeout_seconds:
                return self.in_flight
            await anyio.sleep(0.02)


class DrainGuard:
    """Counts the requests in flight; while draining, refuses new ones (all but /health, which says 503 itself)."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app, self.lifecycle = app, lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.lifecycle.draining and scope["path"] != "/health":
            await send_json_error(
                send,
                503,
                "shutting_down",
                "this server is shutting down; retry (another replica will answer)",
                {"Retry-After": str(DRAIN_RETRY_AFTER_SECONDS), "Connection": "close"},
            )
            return
        self.lifecycle.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.lifecycle.in_flight -= 1
