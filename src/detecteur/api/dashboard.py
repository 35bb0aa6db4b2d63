"""The dashboard: the static export of `frontend/` (Next.js), served by the API at `/` so one server and one URL
give both. Mounted after every API route, so `/v1/...`, `/health`, `/docs` and `/metrics` always win."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from detecteur.api.routes import flat_routes

log = logging.getLogger("detecteur.api")

BUILD_HINT = "cd frontend && npm ci && npm run build (or `make dashboard`)"


class DashboardFiles(StaticFiles):
    """The export's files. A path that is no file is the API's JSON 404 (not the export's HTML 404 page), and a
    POST to an unknown path is a 404 too, not a 405 from the static mount. An API route asked with the wrong
    method (GET /v1/predict) reaches this mount, because Starlette prefers a full match here to the route's
    method mismatch: it gets the route's 405, as it would without a dashboard."""

    def __init__(self, *, directory: Path, api_methods: dict[str, set[str]]) -> None:
        super().__init__(directory=directory, html=True)
        self.api_methods = api_methods

    async def get_response(self, path: str, scope: Scope) -> Response:
        allowed = self.api_methods.get(scope["path"])
        if allowed is not None:
            raise StarletteHTTPException(status_code=405, headers={"Allow": ", ".join(sorted(allowed))})
        if scope["method"] not in ("GET", "HEAD"):
            raise StarletteHTTPException(status_code=404)
        response = await super().get_response(path, scope)
        if response.status_code == 404:
            raise StarletteHTTPException(status_code=404)
        return response


def mount_dashboard(app: FastAPI, dashboard_dir: Path) -> None:
    """Serve `dashboard_dir` at `/` when it holds a built dashboard; otherwise `/` says how to build it."""
    if (dashboard_dir / "index.html").is_file():
        api_methods: dict[str, set[str]] = {}
        for route in flat_routes(app.routes):
            if isinstance(route, APIRoute):
                api_methods.setdefault(route.path, set()).update(route.methods or ())
        app.mount("/", DashboardFiles(directory=dashboard_dir, api_methods=api_methods), name="dashboard")
        log.info("dashboard served at / from %s", dashboard_dir)
        return
    log.warning("no dashboard at %s (index.html missing): build it with %s", dashboard_dir, BUILD_HINT)

    @app.get("/", include_in_schema=False)
    async def no_dashboard() -> JSONResponse:
        return JSONResponse(
            {
                "service": "Détecteur",
                "dashboard": f"not built: {dashboard_dir} has no index.html; build it with {BUILD_HINT}",
                "docs": "/docs",
                "health": "/health",
            }
        )
