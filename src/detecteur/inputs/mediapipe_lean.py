"""Import mediapipe's face detector without the parts of mediapipe that detecting faces never uses.

`import mediapipe` loads every task it has: its vision package imports its drawing helpers, which import
matplotlib.pyplot and OpenCV, and its audio package imports sounddevice. In the service that was ~66 MiB of RSS
and ~0.7 s of cold start for nothing (measured with `python -X importtime` and RSS deltas, docs/lean-serving.md).
`skip_unused_mediapipe_modules` puts a finder in front of the import system that answers those modules with
empty placeholders; touching one raises an AttributeError naming this module. Nothing else changes: the face
detector, `mediapipe.Image` and the rest load as usual.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# What detecting faces never uses: drawing helpers (matplotlib, OpenCV) and the audio tasks (sounddevice).
UNUSED_MODULES = frozenset(
    {
        "mediapipe.tasks.python.vision.drawing_utils",
        "mediapipe.tasks.python.vision.drawing_styles",
        "mediapipe.tasks.python.audio",
    }
)


class _Placeholders(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers `UNUSED_MODULES` with empty modules (the audio one as a package with nothing in it)."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in UNUSED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname.endswith(".audio"))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__

        def missing(attribute: str) -> object:
            raise AttributeError(
                f"{name}.{attribute}: {name} is not loaded in this process (detecteur.inputs.mediapipe_lean skips it)"
            )

        module.__getattr__ = missing  # type: ignore[method-assign]
        if module.__spec__ is not None and module.__spec__.submodule_search_locations is not None:
            module.__path__ = []


def skip_unused_mediapipe_modules() -> None:
    """Install the placeholders (once), unless mediapipe is already imported (then it is too late to matter)."""
    if "mediapipe" in sys.modules or any(isinstance(finder, _Placeholders) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _Placeholders())
