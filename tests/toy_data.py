"""Small generated images standing in for faces, so tests never need the real datasets.

"Synthetic" images carry a faint periodic high-frequency pattern (like the checkerboard traces of
upsampling in generators); "authentic" ones carry sensor-like Gaussian noise. Both share the same smooth
random content, so only the high-frequency trace tells them apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour field on [0, 1], size × size × 3."""
    coarse = rng.uniform(0.15, 0.85, size=(4, 4, 3))
    upsampled = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(upsampled, dtype=np.float64) / 255.0


def toy_image(rng: np.random.Generator, size: int, synthetic: bool) -> Image.Image:
    pixels = smooth_image(rng, size)
    if synthetic:
        yy, xx = np.mgrid[0:size, 0:size]
        pattern = np.where((yy + xx) % 2 == 0, 1.0, -1.0)[..., None]
        pixels = pixels + 0.05 * pattern
    else:
        pixels = pixels + rng.normal(0.0, 0.04, size=pixels.shape)
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8))


def make_toy_dataset(root: Path, per_class: int = 60, size: int = 64, seed: int = 0) -> Path:
    """Write `root/real/*.png` and `root/fake/*.png`; returns `root`."""
    rng = np.random.default_rng(seed)
    for folder, synthetic in (("real", False), ("fake", True)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            toy_image(rng, size, synthetic).save(root / folder / f"{folder}_{index:04d}.png")
    return root
