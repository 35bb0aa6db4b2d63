"""Calibration, its own step after training: a run's logits undone of the class-weight prior, a temperature and a
decision threshold fitted on the validation split only, and the calibrated model file (`model.safetensors`) that
carries them with the test figures of the evaluation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detecteur.config import RUN_CALIBRATED_MODEL_FILE
from detecteur.model.file import ModelMetadata
from detecteur.model.networks import save_model
from detecteur.model.probabilities import FloatArray, fake_probabilities
from detecteur.training.metrics import IntArray, cap_real_source_fpr, choose_threshold, fit_temperature

if TYPE_CHECKING:
    from detecteur.training.evaluate import RunEvaluation


@dataclass(frozen=True)
class CalibrationFit:
    logit_adjustment: tuple[float, float]
    temperature: float
    threshold: float


def fit_calibration(
    val_logits: FloatArray,
    val_labels: IntArray,
    class_weights: tuple[float, float],
    val_sources: Sequence[str] = (),
    max_real_source_fpr: float | None = None,
) -> CalibrationFit:
    """Undo the class-weight prior shift first, then fit the temperature and choose the threshold (Youden's J,
    raised to `max_real_source_fpr` per real source when given): from training facts and the validation split
    only."""
    adjustment = (math.log(class_weights[0]), math.log(class_weights[1]))
    temperature = fit_temperature(val_logits - np.asarray(adjustment), val_labels)
    val_probs = fake_probabilities(val_logits, temperature, adjustment)
    threshold = choose_threshold(val_labels, val_probs)
    if max_real_source_fpr is not None:
        threshold = cap_real_source_fpr(threshold, val_labels, val_probs, val_sources, max_real_source_fpr)
    return CalibrationFit(adjustment, temperature, threshold)


def calibrated_metadata(metadata: ModelMetadata, fit: CalibrationFit, metrics: dict[str, Any]) -> ModelMetadata:
    """The best model's metadata with the calibration, the borderline band widened to hold the threshold, and
    the evaluation's figures."""
    low, high = metadata.borderline_band
    return metadata.model_copy(
        update={
            "logit_adjustment": fit.logit_adjustment,
            "temperature": fit.temperature,
            "threshold": fit.threshold,
            "borderline_band": (min(low, fit.threshold), max(high, fit.threshold)),
            "metrics": metrics,
        }
    )


def save_calibrated_model(run_dir: Path, evaluation: RunEvaluation) -> Path:
    """Write `<run>/model.safetensors`: the evaluated best model's weights with their calibration and the
    evaluation's figures; returns its path."""
    path = run_dir / RUN_CALIBRATED_MODEL_FILE
    metadata = calibrated_metadata(evaluation.metadata, evaluation.calibration, evaluation.metrics)
    save_model(evaluation.model, metadata, path)
    return path
