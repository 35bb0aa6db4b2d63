"""The API's one error type: answered as `{"error": {"code", "message"}}` with its HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """An error the API reports as `{"error": {"code", "message"}}` with its HTTP status (503s add Retry-After)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
