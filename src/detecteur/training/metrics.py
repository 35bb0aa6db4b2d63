"""Metrics and calibration for a binary authentic/synthetic classifier, on plain numpy arrays.

`labels` hold 0 = authentic, 1 = synthetic (`config.LABEL_NAMES`), `fake_probs` the model's probability
that an image is synthetic. Ranking and confusion metrics come from `sklearn.metrics`; this module adds what
sklearn lacks (temperature scaling, the equal error rate, top-label ECE) and the choice of a decision
threshold on the validation split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detecteur.config import AUTHENTIC, SYNTHETIC
from detecteur.model.probabilities import FloatArray, check_logits

# scipy and sklearn are imported inside the functions that use them: importing them costs seconds. The model's
# output as a probability, `fake_probabilities`, is model/probabilities.py's (the service reads it too).

IntArray = npt.NDArray[np.int64]

TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)
THRESHOLD_BOUNDS: tuple[float, float] = (0.01, 0.99)
DEFAULT_THRESHOLD = 0.5


def _check_labels(labels: npt.ArrayLike) -> IntArray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be one-dimensional; got shape {array.shape}")
    if array.size == 0:
        raise ValueError("labels are empty")
    if not np.isin(array, (AUTHENTIC, SYNTHETIC)).all():
        raise ValueError(f"labels must be {AUTHENTIC} (authentic) or {SYNTHETIC} (synthetic)")
    return array.astype(np.int64)


def _check_scored(labels: npt.ArrayLike, fake_probs: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    label_array = _check_labels(labels)
    prob_array = np.asarray(fake_probs, dtype=np.float64)
    if prob_array.shape != label_array.shape:
        raise ValueError(f"fake_probs shape {prob_array.shape} does not match labels shape {label_array.shape}")
    if not np.isfinite(prob_array).all() or prob_array.min() < 0.0 or prob_array.max() > 1.0:
        raise ValueError("fake_probs must be finite probabilities in [0, 1]")
    return label_array, prob_array


def has_both_classes(labels: IntArray) -> bool:
    return bool(np.unique(labels).size == 2)


def _negative_log_likelihood(logits: FloatArray, labels: IntArray, temperature: float) -> float:
    from scipy.special import logsumexp

    scaled = logits / temperature
    true_class_logit = scaled[np.arange(labels.size), labels]
    return float(np.mean(logsumexp(scaled, axis=1) - true_class_logit))


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Temperature T in [0.05, 20] minimising the cross-entropy of softmax(logits / T) on these labels.

    Fit it on validation logits, then pass it to `fake_probabilities`. T > 1 softens an overconfident model;
    the ranking (and so AUC) is unchanged. Deterministic: a bounded scalar search over log T.
    """
    from scipy.optimize import minimize_scalar

    logit_array = check_logits(logits)
    label_array = _check_labels(labels)
    if label_array.size != logit_array.shape[0]:
        raise ValueError(f"{logit_array.shape[0]} logit rows but {label_array.size} labels")
    # Searching over log T makes the step size relative, so 0.05 and 20 are equally easy to reach.
    result = minimize_scalar(
        lambda log_t: _negative_log_likelihood(logit_array, label_array, math.exp(log_t)),
        bounds=(math.log(TEMPERATURE_BOUNDS[0]), math.log(TEMPERATURE_BOUNDS[1])),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.clip(math.exp(float(result.x)), *TEMPERATURE_BOUNDS))


def choose_threshold(labels: npt.ArrayLike, fake_probs: npt.ArrayLike) -> float:
    """Decision threshold on fake probability (synthetic when p >= threshold) maximising Youden's J.

    J = TPR − FPR on these labels, taken from `sklearn.metrics.roc_curve`; use the validation split.

    Every threshold between two neighbouring scores gives the same confusion matrix, so among all thresholds
    reaching the best J the one nearest 0.5 is returned (the midpoint of the gap when 0.5 lies below it),
    clipped to [0.01, 0.99]. With only one class present J is undefined and 0.5 is returned.
    """
    from sklearn.metrics import roc_curve

    label_array, prob_array = _check_scored(labels, fake_probs)
    if not has_both_classes(label_array):
        return DEFAULT_THRESHOLD
    fpr, tpr, thresholds = roc_curve(label_array, prob_array, drop_intermediate=False)
    youden = tpr - fpr
    best = np.flatnonzero(np.isclose(youden, youden.max(), rtol=0.0, atol=1e-12))
    candidates = []
    for index in best:
        # thresholds decrease; index 0 is +inf (nothing called synthetic), the last is the lowest score.
        upper = min(float(thresholds[index]), 1.0)
        lower = float(thresholds[index + 1]) if index + 1 < thresholds.size else 0.0
        if lower < DEFAULT_THRESHOLD <= upper:
            candidates.append(DEFAULT_THRESHOLD)
        elif upper < DEFAULT_THRESHOLD:
            candidates.append(upper)
        else:
            candidates.append((lower + upper) / 2.0)
    chosen = min(candidates, key=lambda threshold: abs(threshold - DEFAULT_THRESHOLD))
    return float(np.clip(chosen, *THRESHOLD_BOUNDS))


def cap_real_source_fpr(
    threshold: float, labels: npt.ArrayLike, fake_probs: npt.ArrayLike, sources: Sequence[str], max_fpr: float
) -> float:
    """`threshold`, raised where needed so that no source's real faces are called synthetic (p >= threshold) more
    often than `max_fpr` on these scores; use the validation split.

    A source with n real faces may keep floor(max_fpr * n) of them at or above the threshold, so it must exceed that
    source's next real score; the raised threshold is the midpoint between the highest such score and the next
    higher score of any face (the same confusion matrix, the widest margin), clipped to [0.01, 0.99]."""
    label_array, prob_array = _check_scored(labels, fake_probs)
    source_array = np.asarray(sources)
    if source_array.shape != label_array.shape:
        raise ValueError(f"{source_array.size} sources for {label_array.size} scores")
    binding = -np.inf
    for source in np.unique(source_array[label_array == AUTHENTIC]):
        reals = np.sort(prob_array[(label_array == AUTHENTIC) & (source_array == source)])[::-1]
        allowed = math.floor(max_fpr * reals.size)
        if allowed < reals.size:
            binding = max(binding, float(reals[allowed]))
    if binding < threshold:
        return threshold
    higher = prob_array[prob_array > binding]
    raised = (binding + float(higher.min())) / 2.0 if higher.size else (binding + 1.0) / 2.0
    return float(np.clip(raised, *THRESHOLD_BOUNDS))


def equal_error_rate(labels: npt.ArrayLike, fake_probs: npt.ArrayLike) -> float:
    """Error rate where the false positive rate equals the false negative rate (linear interpolation on ROC).

    Raises ValueError when the labels contain only one class.
    """
    from sklearn.metrics import roc_curve

    label_array, prob_array = _check_scored(labels, fake_probs)
    if not has_both_classes(label_array):
        raise ValueError("the equal error rate needs both authentic and synthetic labels")
    fpr, tpr, _ = roc_curve(label_array, prob_array)
    # FNR − FPR falls monotonically from 1 to −1 along the curve; the EER is where it crosses zero.
    gap = (1.0 - tpr) - fpr
    crossing = int(np.argmax(gap <= 0.0))
    if gap[crossing] == 0.0:
        return float(fpr[crossing])
    weight = gap[crossing - 1] / (gap[crossing - 1] - gap[crossing])
    return float(fpr[crossing - 1] + weight * (fpr[crossing] - fpr[crossing - 1]))


def expected_calibration_error(labels: npt.ArrayLike, fake_probs: npt.ArrayLike, n_bins: int = 15) -> float:
    """Top-label expected calibration error, in [0, 1].

    Confidence is max(p, 1 − p) for the predicted class (synthetic when p >= 0.5), binned into `n_bins`
    equal-width bins over [0.5, 1] (the only range a binary top-label confidence can take). ECE is the
    count-weighted mean over bins of |accuracy − mean confidence|.
    """
    label_array, prob_array = _check_scored(labels, fake_probs)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1; got {n_bins}")
    predicted = (prob_array >= 0.5).astype(np.int64)
    confidence = np.maximum(prob_array, 1.0 - prob_array)
    correct = (predicted == label_array).astype(np.float64)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    bin_ids = np.searchsorted(edges[1:-1], confidence)
    counts = np.bincount(bin_ids, minlength=n_bins)
    confidence_sums = np.bincount(bin_ids, weights=confidence, minlength=n_bins)
    correct_sums = np.bincount(bin_ids, weights=correct, minlength=n_bins)
    # |sum(correct) − sum(confidence)| / N equals the count-weighted |accuracy − confidence| per bin.
    return float(np.abs(correct_sums - confidence_sums).sum() / counts.sum())


@dataclass(frozen=True)
class ReliabilityBins:
    """A reliability diagram's data: equal-width bins over the fake probability in [0, 1].

    Per bin: `mean_fake_probability` (mean predicted probability of synthetic), `observed_synthetic_fraction`
    (fraction of images truly synthetic) and `counts`. Empty bins hold NaN; select `counts > 0` to draw.
    Bins match `sklearn.calibration.calibration_curve(strategy="uniform")`.
    """

    edges: FloatArray
    mean_fake_probability: FloatArray
    observed_synthetic_fraction: FloatArray
    counts: IntArray


def reliability_bins(labels: npt.ArrayLike, fake_probs: npt.ArrayLike, n_bins: int = 10) -> ReliabilityBins:
    """Bin images by predicted fake probability and compare with how many really are synthetic."""
    label_array, prob_array = _check_scored(labels, fake_probs)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1; got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_ids = np.searchsorted(edges[1:-1], prob_array)
    counts = np.bincount(bin_ids, minlength=n_bins).astype(np.int64)
    prob_sums = np.bincount(bin_ids, weights=prob_array, minlength=n_bins)
    synthetic_sums = np.bincount(bin_ids, weights=label_array.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_fake_probability = np.where(counts > 0, prob_sums / counts, np.nan)
        observed_synthetic_fraction = np.where(counts > 0, synthetic_sums / counts, np.nan)
    return ReliabilityBins(edges, mean_fake_probability, observed_synthetic_fraction, counts)


def roc_auc_by_group(groups: Sequence[str], labels: npt.ArrayLike, fake_probs: npt.ArrayLike) -> dict[str, float]:
    """ROC AUC within each group (e.g. each data source) that holds both classes, by group name. The overall
    AUC can hide a weak source behind strong ones; this is how training curves show it."""
    from sklearn.metrics import roc_auc_score

    label_array, prob_array = _check_scored(labels, fake_probs)
    group_array = np.asarray(groups)
    if group_array.shape != label_array.shape:
        raise ValueError(f"{group_array.size} groups for {label_array.size} labels")
    by_group = {}
    for group in sorted(set(group_array.tolist())):
        members = group_array == group
        if has_both_classes(label_array[members]):
            by_group[group] = float(roc_auc_score(label_array[members], prob_array[members]))
    return by_group


def compute_metrics(labels: npt.ArrayLike, fake_probs: npt.ArrayLike, threshold: float) -> dict[str, Any]:
    """Headline metrics at `threshold` (synthetic when p >= threshold), as JSON-serialisable Python types.

    Precision, recall and F1 are those of the synthetic class; `false_positive_rate` is the share of authentic
    images called synthetic (None without authentic images). `confusion_matrix` is [[tn, fp], [fn, tp]].
    `roc_auc`, `average_precision` and `eer` are None when only one class is present.
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    label_array, prob_array = _check_scored(labels, fake_probs)
    predicted = (prob_array >= threshold).astype(np.int64)
    matrix = confusion_matrix(label_array, predicted, labels=[AUTHENTIC, SYNTHETIC])
    true_negatives, false_positives = int(matrix[0, 0]), int(matrix[0, 1])
    n_authentic = int(np.sum(label_array == AUTHENTIC))
    both_classes = has_both_classes(label_array)
    return {
        "n": int(label_array.size),
        "n_authentic": n_authentic,
        "n_synthetic": int(np.sum(label_array == SYNTHETIC)),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(label_array, predicted)),
        "precision": float(precision_score(label_array, predicted, zero_division=0)),
        "recall": float(recall_score(label_array, predicted, zero_division=0)),
        "f1": float(f1_score(label_array, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(label_array, prob_array)) if both_classes else None,
        "average_precision": float(average_precision_score(label_array, prob_array)) if both_classes else None,
        "eer": equal_error_rate(label_array, prob_array) if both_classes else None,
        "ece": expected_calibration_error(label_array, prob_array),
        "false_positive_rate": (false_positives / (true_negatives + false_positives) if n_authentic > 0 else None),
        "confusion_matrix": matrix.astype(int).tolist(),
    }
