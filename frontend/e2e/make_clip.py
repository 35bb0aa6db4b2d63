"""Writes the end-to-end test's clip: two sample faces side by side, drifting, as a short WebM (VP8: a codec every
Chromium plays). Made at test time so no binary video is committed.

Usage: .venv/bin/python frontend/e2e/make_clip.py OUT.webm
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from video_clips import FACE, OTHER_FACE, encode_clip  # noqa: E402

SECONDS, FPS, SIZE, FACE_SIDE = 4, 10, (640, 360), 220


def frames() -> list[Image.Image]:
    portraits = [Image.open(path).convert("RGB").resize((FACE_SIDE, FACE_SIDE)) for path in (FACE, OTHER_FACE)]
    clip = []
    for index in range(SECONDS * FPS):
        frame = Image.new("RGB", SIZE, (28, 40, 56))
        for slot, portrait in enumerate(portraits):
            frame.paste(portrait, (70 + slot * (FACE_SIDE + 40) + index, (SIZE[1] - FACE_SIDE) // 2))
        clip.append(frame)
    return clip


if __name__ == "__main__":
    Path(sys.argv[1]).write_bytes(encode_clip(frames(), FPS, "webm"))
