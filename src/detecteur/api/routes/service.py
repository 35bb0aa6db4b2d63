"""The service's own routes: health for load balancers, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from detecteur.api.schemas import Health
from detecteur.api.state import State

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(state: State) -> JSONResponse:
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


metrics_router = APIRouter(tags=["service"])


@metrics_router.get("/metrics", response_class=Response)
async def metrics(state: State) -> Response:
    """Prometheus metrics."""
    return Response(state.telemetry.exposition(), media_type="text/plain; version=0.0.4")
