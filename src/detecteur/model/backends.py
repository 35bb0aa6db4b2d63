"""The two ways to run the network on the windows of a region: torch, or ONNX Runtime on the exported graph.

Each backend turns a batch of model-sized windows into N×2 float32 logits, preprocessing them with its own twin
of the one transform: torch with `preprocess.preprocess` (training, evaluation and Grad-CAM see exactly these
numbers), ONNX Runtime with `preprocess.preprocess_array` (NumPy, within 1e-6 of torch), so that a service on
ONNX Runtime never imports torch. Calibration and verdicts stay in `engine`. Thread counts are set here: on a small
machine the service runs a few inference threads at once, and each must not fan out over every core
(oversubscribed OpenMP workers busy-wait for each other and collapse throughput; measured in benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from detecteur.inputs.preprocess import InputSpec, preprocess_array
from detecteur.model.export import INPUT_NAME, OUTPUT_NAME
from detecteur.model.serving_session import MAX_WINDOWS_PER_RUN, serving_session

if TYPE_CHECKING:
    import torch
    from torch import nn


class Backend(Protocol):
    name: str

    def window_logits(self, windows: Sequence[Image.Image], spec: InputSpec) -> np.ndarray:
        """N×2 float32 logits for N windows of `spec.input_size` pixels (preprocessed here)."""
        ...


class TorchBackend:
    """The torch model in eval mode, channels-last (measured faster for the depthwise convolutions on CPU)."""

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        import torch

        self.device = device
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()

    def window_logits(self, windows: Sequence[Image.Image], spec: InputSpec) -> np.ndarray:
        import torch

        from detecteur.inputs.preprocess import preprocess

        return self.logits(torch.stack([preprocess(window, spec) for window in windows]))

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """N×2 float32 logits for an N×C×H×W batch of preprocessed crops."""
        import torch

        with torch.inference_mode():
            inputs = batch.to(self.device).contiguous(memory_format=torch.channels_last)
            result: np.ndarray = self.model(inputs).float().cpu().numpy()
        return result


class OnnxRuntimeBackend:
    """An ONNX Runtime CPU session on a graph exported by `export.export_onnx` (its optimised form cached, see
    `serving_session`). `run` is thread-safe. No torch."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int = 1) -> None:
        self.onnx_path = onnx_path
        self.session = serving_session(onnx_path, threads)

    def window_logits(self, windows: Sequence[Image.Image], spec: InputSpec) -> np.ndarray:
        return self.logits(np.stack([preprocess_array(window, spec) for window in windows]))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """N×2 float32 logits for an N×C×H×W float32 batch of preprocessed crops, run in slices of at most
        `MAX_WINDOWS_PER_RUN` so that the memory arena stays bounded without being shrunk after every run."""
        slices = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: batch[start : start + MAX_WINDOWS_PER_RUN]})[0]
            for start in range(0, len(batch), MAX_WINDOWS_PER_RUN)
        ]
        return np.asarray(np.concatenate(slices), dtype=np.float32)
