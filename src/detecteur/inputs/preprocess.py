"""The forensic transform, written once: training, evaluation, serving and export all call it.

A face crop becomes a C×H×W float tensor: RGB normalised with the backbone's mean/std, plus (for
`in_chans = 4`) a Laplacian high-frequency map of the grayscale image on [0, 1] pixels. The Laplacian
channel is deliberately *not* normalised: its scale is part of the signal (resampling and GAN upsampling
traces live in its amplitude).

With `pixel_signal = "npr"` the three colour channels carry, instead of the picture, each pixel's difference from
the top-left pixel of its 2×2 cell (neighbouring-pixel relationships, Tan et al., CVPR 2024): what an upsampling
layer leaves in every generator's output, with the face's content — and so its look — mostly gone.

Two twins compute it: `preprocess` in torch (training, export, the torch backend, Grad-CAM) and `preprocess_array`
in NumPy (the ONNX Runtime serving path, which must not import torch). tests/test_preprocess_numpy.py holds them
within 1e-6 of each other. torch is imported inside the torch functions only, so that importing this module (the
face crop and the windows need `InputSpec` and `model_windows`) never loads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from detecteur.config import PixelSignal

if TYPE_CHECKING:
    import torch

LAPLACIAN_KERNEL: tuple[tuple[float, ...], ...] = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.587, 0.114)
# The residual of face crops on [0, 1] has a standard deviation of a few hundredths; this gain brings it near the
# unit scale the ImageNet stem was trained on (measured on training faces, `scripts/npr_scale.py`).
NPR_GAIN = 32.0
RESAMPLING = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class InputSpec:
    """What the model expects as input; stored in the model file so serving cannot drift from training."""

    input_size: int
    in_chans: Literal[3, 4]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pixel_signal: PixelSignal = "rgb"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resize_for_model(image: Image.Image, input_size: int) -> Image.Image:
    """RGB image of exactly `input_size`×`input_size` (no-op when it already is)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (input_size, input_size):
        image = image.resize((input_size, input_size), RESAMPLING)
    return image


# Where a native crop larger than the input is judged: its centre, and the window over the eyes (the upper middle of
# a face crop). Two windows keep a served face within twice the cost of one forward pass.
WINDOW_CENTRES: tuple[tuple[float, float], ...] = ((0.5, 0.5), (0.5, 0.25))


def model_windows(crop: Image.Image, input_size: int) -> list[Image.Image]:
    """The `input_size` windows a `native_face_crop` model judges in a native face crop, their logits averaged:
    the crop brought up to `input_size` when it is not larger (one window), else the windows at `WINDOW_CENTRES`
    (fractions of the spare room) — pixels as they are, never resampled down."""
    crop = crop.convert("RGB")
    if min(crop.size) <= input_size:
        return [resize_for_model(crop, input_size)]
    spare_x, spare_y = crop.width - input_size, crop.height - input_size
    windows = []
    for fraction_x, fraction_y in WINDOW_CENTRES:
        left, top = round(spare_x * fraction_x), round(spare_y * fraction_y)
        windows.append(crop.crop((left, top, left + input_size, top + input_size)))
    return windows


def image_to_unit_tensor(image: Image.Image) -> torch.Tensor:
    """3×H×W float32 tensor on [0, 1] from an RGB PIL image."""
    import torch

    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)


def laplacian_map(unit_rgb: torch.Tensor) -> torch.Tensor:
    """Laplacian of the grayscale image, N×1×H×W, from N×3×H×W pixels on [0, 1].

    Borders are replicated so a flat image gives an exactly zero map (zero padding would invent edges).
    """
    import torch
    import torch.nn.functional as F

    weights = torch.tensor(GRAY_WEIGHTS, dtype=unit_rgb.dtype, device=unit_rgb.device).view(1, 3, 1, 1)
    gray = (unit_rgb * weights).sum(dim=1, keepdim=True)
    kernel = torch.tensor(LAPLACIAN_KERNEL, dtype=unit_rgb.dtype, device=unit_rgb.device).view(1, 1, 3, 3)
    return F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernel)


def npr_residual(unit_rgb: torch.Tensor) -> torch.Tensor:
    """N×3×H×W: every pixel minus the top-left pixel of its 2×2 cell (zero on those pixels), times `NPR_GAIN`."""
    anchors = unit_rgb[:, :, 0::2, 0::2].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return (unit_rgb - anchors[:, :, : unit_rgb.shape[2], : unit_rgb.shape[3]]) * NPR_GAIN


def forensic_channels(unit_rgb: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """N×C×H×W model input from N×3×H×W pixels on [0, 1] (the tensor half of `preprocess`)."""
    import torch

    if spec.pixel_signal == "npr":
        colour = npr_residual(unit_rgb)
    else:
        mean = torch.tensor(spec.mean, dtype=unit_rgb.dtype, device=unit_rgb.device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=unit_rgb.dtype, device=unit_rgb.device).view(1, 3, 1, 1)
        colour = (unit_rgb - mean) / std
    if spec.in_chans == 3:
        return colour
    return torch.cat([colour, laplacian_map(unit_rgb)], dim=1)


def preprocess(image: Image.Image, spec: InputSpec) -> torch.Tensor:
    """C×H×W model input for one face crop. The training transform with augmentation off is exactly this."""
    unit_rgb = image_to_unit_tensor(resize_for_model(image, spec.input_size))
    return forensic_channels(unit_rgb.unsqueeze(0), spec).squeeze(0)


def image_to_unit_array(image: Image.Image) -> np.ndarray:
    """3×H×W float32 array on [0, 1] from an RGB PIL image (`image_to_unit_tensor` in NumPy)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def laplacian_map_array(unit_rgb: np.ndarray) -> np.ndarray:
    """1×H×W Laplacian of the grayscale image from 3×H×W pixels on [0, 1], borders replicated: `laplacian_map`
    in NumPy, the 3×3 cross-correlation (conv2d's) written as a sum of shifted copies, zero taps skipped."""
    weights = np.asarray(GRAY_WEIGHTS, dtype=np.float32).reshape(3, 1, 1)
    gray = (unit_rgb * weights).sum(axis=0, dtype=np.float32)
    height, width = gray.shape
    padded = np.pad(gray, 1, mode="edge")
    result: np.ndarray = np.zeros_like(gray)
    for row, taps in enumerate(LAPLACIAN_KERNEL):
        for column, tap in enumerate(taps):
            if tap:
                result += np.float32(tap) * padded[row : row + height, column : column + width]
    return result[np.newaxis]


def npr_residual_array(unit_rgb: np.ndarray) -> np.ndarray:
    """3×H×W `npr_residual` in NumPy."""
    height, width = unit_rgb.shape[1:]
    anchors = unit_rgb[:, 0::2, 0::2].repeat(2, axis=1).repeat(2, axis=2)[:, :height, :width]
    residual: np.ndarray = (unit_rgb - anchors) * np.float32(NPR_GAIN)
    return residual


def preprocess_array(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """C×H×W float32 model input for one face crop: `preprocess` in NumPy, for the torch-free serving path."""
    unit_rgb = image_to_unit_array(resize_for_model(image, spec.input_size))
    if spec.pixel_signal == "npr":
        colour = npr_residual_array(unit_rgb)
    else:
        mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)
        colour = (unit_rgb - mean) / std
    if spec.in_chans == 3:
        return colour
    return np.concatenate([colour, laplacian_map_array(unit_rgb)], axis=0)
