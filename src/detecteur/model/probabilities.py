"""From the network's two logits to the probability that a face is synthetic: what serving, export checks and
evaluation all read a model's output as. NumPy only (the lean service has no torch)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detecteur.config import SYNTHETIC

FloatArray = npt.NDArray[np.float64]


def check_logits(logits: npt.ArrayLike) -> FloatArray:
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"logits must have shape (N, 2) (authentic, synthetic); got {array.shape}")
    return array


def fake_probabilities(
    logits: npt.ArrayLike, temperature: float = 1.0, logit_adjustment: tuple[float, float] = (0.0, 0.0)
) -> FloatArray:
    """Probability of the synthetic class, softmax((logits − logit_adjustment) / temperature)[:, 1], for
    logits of shape (N, 2). The adjustment (log class weights of training) undoes a weighted loss's prior
    shift; the temperature comes from validation."""
    if not temperature > 0.0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    scaled = (check_logits(logits) - np.asarray(logit_adjustment, dtype=np.float64)) / temperature
    # Subtracting the row maximum keeps exp() finite for large logits without changing the softmax.
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    probs: FloatArray = shifted[:, SYNTHETIC] / shifted.sum(axis=1)
    return probs
