"""The service's OpenAPI schema as JSON: the source of the dashboard's generated types (`make types`).

    python -m scripts.export_openapi > frontend/openapi.json

`info.version` is left out: it is the installed package's version, which says nothing about the contract and
would make the file differ between a fresh and a reinstalled environment.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from detecteur.api.main import create_app
from detecteur.config import Settings


def openapi_schema() -> dict[str, Any]:
    schema = create_app(Settings()).openapi()
    schema["info"].pop("version", None)
    return schema


def openapi_json() -> str:
    return json.dumps(openapi_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(openapi_json())
