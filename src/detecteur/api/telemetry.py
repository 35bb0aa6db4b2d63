"""Prometheus metrics: request counts and latency by route and status, model latency, faces per image."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detecteur.api.routes import flat_routes

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    """One registry per app, so several apps (tests) never clash over global metric names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "detecteur_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "detecteur_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "detecteur_model_seconds",
            "Face detection + model time per image",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.faces_per_image = Histogram(
            "detecteur_faces_per_image",
            "Faces found per image",
            buckets=(0, 1, 2, 3, 5, 10, 20),
            registry=self.registry,
        )

        self.case_write_seconds = Histogram(
            "detecteur_case_write_seconds",
            "Time to record one case in the cases store",
            buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        self.case_write_errors = Counter(
            "detecteur_case_write_errors", "Judged files the cases store could not record", registry=self.registry
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)


class TelemetryMiddleware:
    """Counts and times every HTTP request by route template and status. Pure ASGI, as the other middleware
    (`security`): `BaseHTTPMiddleware` (FastAPI's `app.middleware("http")`) runs each request through a task group
    and memory streams of its own, CPU a loaded server spends outside the model (docs/lean-serving.md)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = _route_template(scope)
        status = 500  # what the client gets when the application raises before it answers

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.telemetry.observe(scope["method"], route, status, time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The route's path template (`/v1/predict`), never the raw URL: unknown paths share one label so a
    scanner cannot blow up the metric's cardinality."""
    for route in flat_routes(scope["app"].router.routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"
