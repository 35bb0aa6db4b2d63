"""The dashboard's generated API types start from `frontend/openapi.json`: it must be the service's schema today."""

from __future__ import annotations

from pathlib import Path

from scripts.export_openapi import openapi_json

COMMITTED = Path(__file__).resolve().parents[1] / "frontend" / "openapi.json"


def test_the_committed_openapi_schema_is_the_services() -> None:
    # The TypeScript side (frontend/tests/apiSchema.test.ts) checks lib/api-schema.ts against this file.
    assert COMMITTED.read_text() == openapi_json(), "frontend/openapi.json is stale: run `make types`"
