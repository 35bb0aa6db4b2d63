"""Limits that keep one client from exhausting the service: request body size (enforced while the body streams
in, before any multipart parsing or spooling) and the bounded queue in front of the inference threads."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TypeVar

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")


async def send_json_error(
    send: Send, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> None:
    """Answer with the API's error body `{"error": {"code", "message"}}` from inside an ASGI middleware."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Pure ASGI middleware: 413 as soon as a request announces (Content-Length) or sends more than
    `max_bytes`, without reading the rest — a 25 MB upload sent slowly costs us 20 MB at most.

    `max_bytes_by_path` gives routes that take less (one file instead of several) their own, lower limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_bytes_by_path: Mapping[str, int] | None = None) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.max_bytes_by_path = dict(max_bytes_by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes_by_path.get(scope["path"], self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(send, max_bytes)
            return
        received = 0
        exceeded = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Stop the app reading: to it the client has gone. Whatever it answers is replaced below.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            if not exceeded:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(send, max_bytes)

        await self.app(scope, counting_receive, guarded_send)
        if exceeded and not refused:
            # The app stopped at the disconnect without answering (Starlette does when parsing a form): answer here.
            refused = True
            await self._refuse(send, max_bytes)

    async def _refuse(self, send: Send, max_bytes: int) -> None:
        await send_json_error(send, 413, "request_too_large", f"the request body exceeds {max_bytes} bytes")


class QueueFull(Exception):
    """Every inference thread is busy and the queue behind them is full."""


class InferenceQueue:
    """Inference in at most `limiter.total_tokens` threads, with at most `max_waiting` images queued behind them.

    A caller past that is refused at once (`QueueFull`, answered 503 + Retry-After) instead of waiting without
    bound while its upload sits in memory. Cancelling a caller (request timeout) does not interrupt an image
    already being judged — threads cannot be interrupted — so at most `limiter.total_tokens` images are ever
    judged at once.
    """

    def __init__(self, limiter: anyio.CapacityLimiter, max_waiting: int) -> None:
        self.limiter, self.max_waiting = limiter, max_waiting
        self.pending = 0  # running + waiting; only touched from the event loop

    @property
    def capacity(self) -> int:
        return int(self.limiter.total_tokens) + self.max_waiting

    async def run(self, work: Callable[[], T]) -> T:
        if self.pending >= self.capacity:
            raise QueueFull(
                f"the server is judging {int(self.limiter.total_tokens)} images and has {self.max_waiting} waiting; "
                "retry shortly"
            )
        self.pending += 1
        try:
            return await anyio.to_thread.run_sync(work, limiter=self.limiter)
        finally:
            self.pending -= 1
