"""The two ways to run the network on a batch of preprocessed crops: torch, or ONNX Runtime on the exported graph.

Both take the N×C×H×W tensor `preprocess.preprocess` builds and return N×2 float32 logits; calibration and
verdicts stay in `engine`. Thread counts are set here: on a small machine the service runs a few inference
threads at once, and each must not fan out over every core (oversubscribed OpenMP workers busy-wait for each
other and collapse throughput; measured in benchmarks/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from detecteur.export import INPUT_NAME, OUTPUT_NAME, onnx_session


class Backend(Protocol):
    name: str

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """N×2 float32 logits for an N×C×H×W batch of preprocessed crops."""
        ...


class TorchBackend:
    """The torch model in eval mode, channels-last (measured faster for the depthwise convolutions on CPU)."""

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.device = device
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> np.ndarray:
        inputs = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        result: np.ndarray = self.model(inputs).float().cpu().numpy()
        return result


class OnnxRuntimeBackend:
    """An ONNX Runtime CPU session on a graph exported by `export.export_onnx`. `run` is thread-safe."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int = 1) -> None:
        self.onnx_path = onnx_path
        self.session = onnx_session(onnx_path, threads)

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        outputs = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})
        return np.asarray(outputs[0], dtype=np.float32)
