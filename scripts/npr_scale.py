"""Measure the spread of the neighbouring-pixel residual on training faces, to check `preprocess.NPR_GAIN`.

Up to `--per-source` training crops of each source of a split (fixed seed), each judged in the windows a
`native_face_crop` model sees (`preprocess.model_windows`), give the standard deviation of the raw residual (gain 1)
per source; the gain that brings the pooled figure to 1 is printed beside the one in use.

    python scripts/npr_scale.py data/splits/faces-v2/split-taef2-200.csv --per-source 40
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from detecteur.inputs.preprocess import NPR_GAIN, image_to_unit_array, model_windows, npr_residual_array


def training_crops(split_file: Path, per_source: int, seed: int) -> dict[str, list[Path]]:
    """Up to `per_source` training crop paths per source, paths resolved against the split file's folder."""
    by_source: dict[str, list[Path]] = defaultdict(list)
    with split_file.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["split"] == "train":
                by_source[row["source"]].append((split_file.parent / row["path"]).resolve())
    generator = random.Random(seed)
    return {source: generator.sample(paths, min(per_source, len(paths))) for source, paths in sorted(by_source.items())}


def residual_std(path: Path, input_size: int) -> float:
    """The raw residual's standard deviation over the windows a model would judge in this crop."""
    with Image.open(path) as image:
        windows = model_windows(image, input_size)
    residuals = [npr_residual_array(image_to_unit_array(window)) / np.float32(NPR_GAIN) for window in windows]
    return float(np.std(np.stack(residuals)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("split", type=Path)
    parser.add_argument("--per-source", type=int, default=40)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pooled: list[float] = []
    for source, paths in training_crops(args.split, args.per_source, args.seed).items():
        spreads = [residual_std(path, args.input_size) for path in paths]
        pooled += spreads
        print(f"{source:20s} {len(spreads):4d} crops  residual std median {np.median(spreads):.4f}")
    typical = float(np.median(pooled))
    print(f"pooled median {typical:.4f}: gain for unit spread {1 / typical:.1f} (in use: {NPR_GAIN})")


if __name__ == "__main__":
    main()
