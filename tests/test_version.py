"""One version number: the package's, read from its installed metadata, is the one the API publishes."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import detecteur
from detecteur.api.main import create_app
from detecteur.config import Settings


def test_the_package_version_is_read_from_the_installed_metadata() -> None:
    assert detecteur.__version__ == version("detecteur")


def test_the_api_publishes_the_package_version(tmp_path: Path) -> None:
    app = create_app(Settings(model_path=tmp_path / "absent.safetensors"))
    assert app.version == detecteur.__version__
    assert app.openapi()["info"]["version"] == detecteur.__version__
