"""`detecteur.inputs.mediapipe_lean`: the face detector loads without mediapipe's drawing and audio modules (a fresh
interpreter, since this one may have imported mediapipe already)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_face_detector_loads_without_matplotlib_opencv_or_sounddevice() -> None:
    code = """
import json, sys
from PIL import Image
from detecteur.inputs.faces import FaceFinder
finder = FaceFinder()
boxes = finder.detect(Image.open("tests/data/samples/stylegan-ffhq-real-00006.jpg").convert("RGB"))
drawing = sys.modules["mediapipe.tasks.python.vision.drawing_utils"]  # mediapipe rebinds `mediapipe.tasks`
try:
    drawing.draw_landmarks
    touched = "no error"
except AttributeError as error:
    touched = str(error)
finder.close()
print(json.dumps({"faces": len(boxes), "loaded": sorted({"matplotlib", "cv2", "sounddevice"} & set(sys.modules)),
                  "touched": touched}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["faces"] == 1
    assert found["loaded"] == []
    assert "mediapipe_lean" in found["touched"]
