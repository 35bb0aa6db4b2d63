"""Détecteur: face forensics — authentic or synthetic, how sure, and why.

`from detecteur import Detector`, then `Detector.load().judge(image_path_or_bytes)`: see the README.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    # The one version number: pyproject.toml's, as installed. Typed nowhere else.
    __version__ = version("detecteur")
except PackageNotFoundError:  # sources on sys.path without an install: say so rather than guess
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from detecteur.inference.engine import Detector

__all__ = ["Detector", "__version__"]


def __getattr__(name: str) -> object:
    # Imported on first use: `Detector` pulls in torch, which the CLI's `--help` and the settings never need.
    if name == "Detector":
        from detecteur.inference.engine import Detector

        return Detector
    raise AttributeError(f"module 'detecteur' has no attribute {name!r}")
