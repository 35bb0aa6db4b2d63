"""Administration: swapping the served model without a restart (off unless DETECTEUR_ADMIN_KEY is set)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Body, Header

from detecteur.api.errors import ERROR_RESPONSES, ServiceError
from detecteur.api.reload import ReloadRequest, ReloadResult, reload_model
from detecteur.api.schemas import ErrorResponse
from detecteur.api.state import State

router = APIRouter(tags=["service"])


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResult,
    responses={**ERROR_RESPONSES, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def admin_reload(
    state: State,
    x_admin_key: Annotated[str | None, Header(description="The server's DETECTEUR_ADMIN_KEY.")] = None,
    body: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResult:
    """Load a model file (by default the configured one, read again), check that it judges an image, and swap
    it in without a restart; requests in flight finish on the old model. `SIGHUP` does the same."""
    settings = state.settings
    if settings.admin_key is None:
        raise ServiceError(404, "not_found", "admin routes are off: set DETECTEUR_ADMIN_KEY to enable them")
    expected = hashlib.sha256(settings.admin_key.get_secret_value().encode()).digest()
    presented = hashlib.sha256((x_admin_key or "").encode()).digest()
    if not hmac.compare_digest(expected, presented):
        raise ServiceError(403, "forbidden", "send the admin key in the X-Admin-Key header")
    return await reload_model(state, body.model_path if body else None)
