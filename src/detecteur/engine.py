"""`Detector`: a model file loaded once, scoring face crops with the same `preprocess` as training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from detecteur.metrics import fake_probabilities
from detecteur.model import ModelMetadata, load_model
from detecteur.preprocess import preprocess

VerdictLabel = Literal["authentic", "borderline", "synthetic"]


@dataclass(frozen=True)
class Verdict:
    fake_probability: float  # calibrated with the model file's temperature
    verdict: VerdictLabel
    confidence: float  # max(softmax): the probability of the more likely class


def decide(fake_probability: float, metadata: ModelMetadata) -> Verdict:
    """Verdict from a calibrated fake probability, with the threshold and band the model file carries."""
    low, high = metadata.borderline_band
    label: VerdictLabel
    if low <= fake_probability <= high:
        label = "borderline"
    elif fake_probability >= metadata.threshold:
        label = "synthetic"
    else:
        label = "authentic"
    return Verdict(fake_probability, label, max(fake_probability, 1.0 - fake_probability))


class Detector:
    """Loads a model file once; `predict` scores a list of face crops (or whole images) in batches."""

    def __init__(self, model_path: Path, device: str = "cpu", batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.model, self.metadata = load_model(model_path, self.device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def predict(self, images: Sequence[Image.Image]) -> list[Verdict]:
        spec = self.metadata.input_spec
        verdicts: list[Verdict] = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([preprocess(image, spec) for image in images[start : start + self.batch_size]])
            logits = self.model(batch.to(self.device)).float().cpu().numpy()
            probabilities = fake_probabilities(logits, self.metadata.temperature, self.metadata.logit_adjustment)
            verdicts.extend(decide(float(p), self.metadata) for p in probabilities)
        return verdicts
