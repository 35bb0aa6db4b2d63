"""How a model looks at a region — a native face crop, or the whole image for a whole-image model: the windows
its framing cuts (`faces.framed_windows`), scored in batches, their logits averaged. The service, evaluation and the
leave-one-generator-out sweep all score regions through `region_logits`. No torch here: the backend preprocesses
the windows with its own twin of the transform (`backends`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from detecteur.config import Framing
from detecteur.inputs.faces import framed_windows
from detecteur.inputs.preprocess import InputSpec
from detecteur.model.backends import Backend, TorchBackend

if TYPE_CHECKING:
    import torch
    from torch import nn

NUM_LOGITS = 2


def region_logits(
    backend: Backend, spec: InputSpec, framing: Framing, regions: Sequence[Image.Image], batch_size: int = 32
) -> np.ndarray:
    """N×2 logits, one row per region: the mean over the windows the model looks at in it."""
    windows = [framed_windows(region, framing, spec.input_size) for region in regions]
    flat = [window for group in windows for window in group]
    batches = [
        backend.window_logits(flat[start : start + batch_size], spec) for start in range(0, len(flat), batch_size)
    ]
    if not batches:
        return np.zeros((0, NUM_LOGITS), dtype=np.float32)
    logits = np.concatenate(batches)
    ends = np.cumsum([len(group) for group in windows])
    return np.stack([logits[end - len(group) : end].mean(axis=0) for group, end in zip(windows, ends, strict=True)])


def network_region_logits(
    network: nn.Module,
    spec: InputSpec,
    framing: Framing,
    regions: Sequence[Image.Image],
    device: torch.device | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """`region_logits` of a torch network in this process (evaluation, the leave-one-generator-out sweep,
    scripts), on the CPU unless `device` says otherwise."""
    import torch

    return region_logits(TorchBackend(network, device or torch.device("cpu")), spec, framing, regions, batch_size)
