"""Détecteur: face forensics — authentic or synthetic, how sure, and why.

`from detecteur import Detector`, then `Detector.load().judge(image_path_or_bytes)`: see the README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from detecteur.engine import Detector

__all__ = ["Detector", "__version__"]


def __getattr__(name: str) -> object:
    # Imported on first use: `Detector` pulls in torch, which the CLI's `--help` and the settings never need.
    if name == "Detector":
        from detecteur.engine import Detector

        return Detector
    raise AttributeError(f"module 'detecteur' has no attribute {name!r}")
