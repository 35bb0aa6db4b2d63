"""Face detection per image at 256 / 640 / 1280 / 2560 px: BlazeFace alone (`FaceFinder.detect`) and the whole
face stage the service runs (`Detector.regions`: detect, then crop and normalise the face from the original).

    .venv/bin/python benchmarks/faces.py [--iterations 40]

Writes benchmarks/results/faces.json.
"""

from __future__ import annotations

import argparse
import io
import time

from benchlib import Record, face_jpeg, percentiles
from PIL import Image

from detecteur.config import Settings
from detecteur.inference.engine import Detector
from detecteur.inputs.faces import FaceFinder

SIDES = (256, 640, 1280, 2560)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()

    record = Record("faces", iterations=args.iterations, sides=SIDES, image="sample face resampled to side x side")
    finder = FaceFinder()
    detector = Detector(Settings().model_path, backend="torch", face_finder=finder)
    results: dict[str, object] = {}
    for side in SIDES:
        image = Image.open(io.BytesIO(face_jpeg(side))).convert("RGB")
        detect_ms: list[float] = []
        regions_ms: list[float] = []
        boxes = finder.detect(image)
        detector.regions(image)
        for _ in range(args.iterations):
            started = time.perf_counter()
            finder.detect(image)
            detected = time.perf_counter()
            detector.regions(image)
            regions_ms.append((time.perf_counter() - detected) * 1000)
            detect_ms.append((detected - started) * 1000)
        results[f"{side}px"] = {
            "detect_ms": percentiles(detect_ms, (50, 95)),
            "detect_and_crop_ms": percentiles(regions_ms, (50, 95)),
            "faces": len(boxes),
            "box": [boxes[0].x, boxes[0].y, boxes[0].width, boxes[0].height] if boxes else None,
        }
        print(f"{side} px:", results[f"{side}px"])
    record.write(results)


if __name__ == "__main__":
    main()
