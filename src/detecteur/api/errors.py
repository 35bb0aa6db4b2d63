"""The API's one error type: answered as `{"error": {"code", "message"}}` with its HTTP status."""

from __future__ import annotations

from typing import Any

from detecteur.api.schemas import ErrorResponse

# The errors every route may answer with, for the OpenAPI schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 408, 413, 415, 422, 429, 503)
}


class ServiceError(Exception):
    """An error the API reports as `{"error": {"code", "message"}}` with its HTTP status (503s add Retry-After)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
