"""Prometheus metrics: request counts and latency by route and status, model latency, faces per image."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

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

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        route = _route_template(request)
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            self.requests.labels(request.method, route, str(status)).inc()
            self.request_seconds.labels(route).observe(time.perf_counter() - started)


def _route_template(request: Request) -> str:
    """The route's path template (`/v1/predict`), never the raw URL: unknown paths share one label so a
    scanner cannot blow up the metric's cardinality."""
    for route in flat_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"
