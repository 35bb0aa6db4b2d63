"""Metrics, calibration, threshold choice and the written report, checked against hand values and sklearn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.special import expit, logit, softmax
from sklearn.calibration import calibration_curve

from detecteur.model.probabilities import fake_probabilities
from detecteur.training.evaluate import write_report
from detecteur.training.metrics import (
    cap_real_source_fpr,
    choose_threshold,
    compute_metrics,
    equal_error_rate,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    roc_auc_by_group,
)

# Four authentic, six synthetic; at 0.5 the authentic 0.6 is a false positive, the synthetic 0.4 a miss.
KNOWN_LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
KNOWN_PROBS = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.55, 0.7, 0.8, 0.9, 0.95])


def labels_drawn_from(fake_probs: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels for which `fake_probs` is exactly calibrated: synthetic with probability p."""
    return (np.random.default_rng(seed).random(fake_probs.size) < fake_probs).astype(np.int64)


def logits_with_margin(margin: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros_like(margin), margin], axis=1)


def test_fake_probability_is_the_softmax_of_the_synthetic_column() -> None:
    logits = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, -1.0]])
    np.testing.assert_allclose(fake_probabilities(logits), softmax(logits, axis=1)[:, 1])


def test_temperature_divides_the_logits_before_the_softmax() -> None:
    logits = np.array([[1.0, 3.0], [2.0, -1.0]])
    np.testing.assert_allclose(fake_probabilities(logits, temperature=2.0), softmax(logits / 2.0, axis=1)[:, 1])


def test_fake_probability_stays_finite_for_huge_logits() -> None:
    probs = fake_probabilities(np.array([[1000.0, -1000.0], [-1000.0, 1000.0]]))
    np.testing.assert_array_equal(probs, [0.0, 1.0])


def test_fake_probability_rejects_logits_that_are_not_two_columns() -> None:
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        fake_probabilities(np.zeros((4, 3)))


def test_metrics_match_hand_counts_on_a_known_case() -> None:
    metrics = compute_metrics(KNOWN_LABELS, KNOWN_PROBS, threshold=0.5)
    assert metrics["confusion_matrix"] == [[3, 1], [1, 5]]
    assert (metrics["n"], metrics["n_authentic"], metrics["n_synthetic"]) == (10, 4, 6)
    assert metrics["threshold"] == 0.5
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["precision"] == pytest.approx(5 / 6)
    assert metrics["recall"] == pytest.approx(5 / 6)
    assert metrics["f1"] == pytest.approx(5 / 6)
    assert metrics["false_positive_rate"] == pytest.approx(1 / 4)
    # 22 of the 24 (synthetic, authentic) pairs are ranked correctly: 0.4 and 0.55 fall below the 0.6.
    assert metrics["roc_auc"] == pytest.approx(22 / 24)


def test_metrics_are_plain_json_types() -> None:
    metrics = compute_metrics(KNOWN_LABELS, KNOWN_PROBS, threshold=np.float64(0.5))
    assert json.loads(json.dumps(metrics)) == metrics
    assert all(type(value) in (int, float, list) for value in metrics.values())


def test_a_score_equal_to_the_threshold_is_called_synthetic() -> None:
    metrics = compute_metrics(np.array([0, 1]), np.array([0.2, 0.7]), threshold=0.7)
    assert metrics["confusion_matrix"] == [[1, 0], [0, 1]]


def test_ranking_metrics_are_none_when_only_one_class_is_present() -> None:
    only_synthetic = compute_metrics(np.array([1, 1, 1]), np.array([0.2, 0.7, 0.9]), threshold=0.5)
    assert only_synthetic["roc_auc"] is None
    assert only_synthetic["average_precision"] is None
    assert only_synthetic["eer"] is None
    assert only_synthetic["false_positive_rate"] is None
    assert only_synthetic["recall"] == pytest.approx(2 / 3)

    only_authentic = compute_metrics(np.array([0, 0]), np.array([0.2, 0.7]), threshold=0.5)
    assert only_authentic["roc_auc"] is None
    assert only_authentic["false_positive_rate"] == pytest.approx(0.5)


def test_metrics_reject_labels_other_than_authentic_and_synthetic() -> None:
    with pytest.raises(ValueError, match="labels"):
        compute_metrics(np.array([0, 2]), np.array([0.1, 0.9]), threshold=0.5)


def test_metrics_reject_scores_that_do_not_match_the_labels() -> None:
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(np.array([0, 1]), np.array([0.1, 0.9, 0.5]), threshold=0.5)


def test_eer_of_perfectly_separated_scores_is_zero() -> None:
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 0.0


def test_eer_of_random_scores_is_about_one_half() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=20_000)
    assert equal_error_rate(labels, rng.random(20_000)) == pytest.approx(0.5, abs=0.02)


def test_eer_is_where_false_positive_and_false_negative_rates_meet() -> None:
    # Threshold 0.7: one of three authentic called synthetic, one of three synthetic missed.
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.7, 0.3, 0.8, 0.9])
    assert equal_error_rate(labels, probs) == pytest.approx(1 / 3)


def test_eer_interpolates_across_tied_scores() -> None:
    assert equal_error_rate(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)


def test_eer_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        equal_error_rate(np.array([1, 1]), np.array([0.5, 0.9]))


def test_ece_matches_a_hand_computed_value() -> None:
    # Confidence 0.92, half right: |0.5 − 0.92| = 0.42; confidence 0.83, all right: 0.17. Equal weights.
    labels = np.array([1, 0, 0, 0])
    probs = np.array([0.92, 0.92, 0.17, 0.17])
    assert expected_calibration_error(labels, probs, n_bins=5) == pytest.approx((0.42 + 0.17) / 2)


def test_ece_of_perfectly_calibrated_data_is_small() -> None:
    probs = np.random.default_rng(2).random(20_000)
    assert expected_calibration_error(labels_drawn_from(probs), probs) < 0.02


def test_ece_of_overconfident_data_is_large() -> None:
    true_probs = np.random.default_rng(3).uniform(0.02, 0.98, size=20_000)
    overconfident = expit(4.0 * logit(true_probs))
    assert expected_calibration_error(labels_drawn_from(true_probs), overconfident) > 0.1


def test_reliability_bins_match_sklearn_calibration_curve() -> None:
    probs = np.random.default_rng(4).beta(0.5, 0.5, size=2_000)
    labels = labels_drawn_from(probs)
    bins = reliability_bins(labels, probs, n_bins=10)
    observed, predicted = calibration_curve(labels, probs, n_bins=10, strategy="uniform")
    filled = bins.counts > 0
    np.testing.assert_allclose(bins.observed_synthetic_fraction[filled], observed)
    np.testing.assert_allclose(bins.mean_fake_probability[filled], predicted)
    assert bins.counts.sum() == 2_000
    assert bins.edges.tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())


def test_reliability_bins_leave_empty_bins_as_nan() -> None:
    bins = reliability_bins(np.array([0, 1]), np.array([0.05, 0.95]), n_bins=10)
    assert bins.counts.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert np.isnan(bins.mean_fake_probability[1:9]).all()


@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_fit_temperature_recovers_the_temperature_that_generated_the_labels(true_temperature: float) -> None:
    logits = logits_with_margin(np.random.default_rng(5).normal(0.0, 3.0, size=20_000))
    labels = labels_drawn_from(fake_probabilities(logits, true_temperature), seed=6)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.1)


def test_temperature_scaling_reduces_the_ece_of_an_overconfident_model() -> None:
    logits = logits_with_margin(np.random.default_rng(7).normal(0.0, 4.0, size=20_000))
    labels = labels_drawn_from(fake_probabilities(logits, temperature=3.0), seed=8)
    temperature = fit_temperature(logits, labels)
    ece_before = expected_calibration_error(labels, fake_probabilities(logits))
    ece_after = expected_calibration_error(labels, fake_probabilities(logits, temperature))
    assert ece_after < ece_before / 3


def test_fit_temperature_is_deterministic_and_within_bounds() -> None:
    logits = logits_with_margin(np.random.default_rng(9).normal(0.0, 1.0, size=1_000))
    # Labels that always agree with the logits' sign push the fit to its sharpest allowed temperature.
    labels = (logits[:, 1] > 0).astype(np.int64)
    first = fit_temperature(logits, labels)
    assert first == fit_temperature(logits, labels)
    assert 0.05 <= first <= 0.06


def test_choose_threshold_separates_two_well_separated_score_clouds() -> None:
    rng = np.random.default_rng(10)
    labels = np.repeat([0, 1], 500)
    probs = np.concatenate([rng.uniform(0.70, 0.80, 500), rng.uniform(0.90, 0.99, 500)])
    threshold = choose_threshold(labels, probs)
    assert probs[labels == 0].max() < threshold <= probs[labels == 1].min()
    assert compute_metrics(labels, probs, threshold)["accuracy"] == 1.0


def test_choose_threshold_prefers_one_half_among_equally_good_thresholds() -> None:
    labels = np.repeat([0, 1], 50)
    probs = np.concatenate([np.linspace(0.05, 0.3, 50), np.linspace(0.6, 0.95, 50)])
    assert choose_threshold(labels, probs) == 0.5


def test_choose_threshold_maximises_youden_j() -> None:
    # At 0.4 every synthetic image is caught and one authentic in four flagged (J = 3/4); the next best cut,
    # 0.7, misses two synthetic images for no false positive (J = 2/3).
    assert choose_threshold(KNOWN_LABELS, KNOWN_PROBS) == pytest.approx(0.4)


def test_choose_threshold_is_clipped_away_from_zero() -> None:
    labels = np.array([0, 0, 1, 1])
    probs = np.array([0.001, 0.002, 0.003, 0.004])
    assert choose_threshold(labels, probs) == 0.01


# Two real sources: "lab" well separated, "web" with two reals scored like fakes (0.85, 0.75) among ten.
CAP_LABELS = np.array([0] * 4 + [0] * 10 + [1] * 4)
CAP_SOURCES = ["lab"] * 4 + ["web"] * 10 + ["gan"] * 4
LAB_REALS = [0.05, 0.1, 0.15, 0.2]
WEB_REALS = [0.85, 0.75, 0.3, 0.25, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05]
FAKES = [0.7, 0.8, 0.9, 0.95]
CAP_PROBS = np.array([*LAB_REALS, *WEB_REALS, *FAKES])


def _false_positive_rate(probs: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    return float(np.mean(probs[mask] >= threshold))


def test_the_cap_raises_the_threshold_until_no_real_source_exceeds_it() -> None:
    web = np.array(CAP_SOURCES) == "web"
    youden = choose_threshold(CAP_LABELS, CAP_PROBS)
    assert _false_positive_rate(CAP_PROBS, web, youden) == pytest.approx(0.2)
    # 10 % of ten web reals: one may stay above; the threshold goes between the 0.75 real and the 0.8 fake.
    capped = cap_real_source_fpr(youden, CAP_LABELS, CAP_PROBS, CAP_SOURCES, 0.1)
    assert capped == pytest.approx(0.775)
    assert _false_positive_rate(CAP_PROBS, web, capped) == pytest.approx(0.1)
    # Under 10 %: none may; the threshold clears the 0.85 real, midway to the 0.9 fake.
    assert cap_real_source_fpr(youden, CAP_LABELS, CAP_PROBS, CAP_SOURCES, 0.05) == pytest.approx(0.875)


def test_the_cap_leaves_a_threshold_that_already_meets_it() -> None:
    assert cap_real_source_fpr(0.8, CAP_LABELS, CAP_PROBS, CAP_SOURCES, 0.1) == 0.8


def test_the_cap_refuses_sources_that_do_not_match_the_scores() -> None:
    with pytest.raises(ValueError, match="sources"):
        cap_real_source_fpr(0.5, CAP_LABELS, CAP_PROBS, CAP_SOURCES[:-1], 0.1)


def test_choose_threshold_returns_one_half_when_only_one_class_is_present() -> None:
    assert choose_threshold(np.array([1, 1, 1]), np.array([0.1, 0.8, 0.9])) == 0.5


def test_write_report_writes_json_and_markdown_with_the_values(tmp_path: Path) -> None:
    report = {"dataset": "known", "model": "0+test", **compute_metrics(KNOWN_LABELS, KNOWN_PROBS, threshold=0.5)}
    report["per_source"] = {
        "stylegan2": compute_metrics(np.array([1, 1]), np.array([0.4, 0.9]), threshold=0.5),
        "ffhq": compute_metrics(np.array([0, 0]), np.array([0.1, 0.6]), threshold=0.5),
    }
    report["calibration"] = {
        "logit_adjustment": [0.0, 0.0],
        "temperature": 1.7,
        "ece_before": 0.12345,
        "ece_after": 0.01,
        "val_ece_before": 0.2,
        "val_ece_after": 0.02,
    }
    directory = tmp_path / "eval"

    write_report(report, directory)

    assert json.loads((directory / "report.json").read_text()) == report
    markdown = (directory / "report.md").read_text()
    assert "| roc_auc | 0.9167 |" in markdown
    assert "| accuracy | 0.8000 |" in markdown
    assert "| authentic | 3 | 1 |" in markdown
    assert "| synthetic | 1 | 5 |" in markdown
    assert "| stylegan2 |" in markdown
    assert "| ffhq |" in markdown
    assert "| ece_before | 0.1235 |" in markdown
    assert sorted(path.name for path in directory.iterdir()) == ["report.json", "report.md"]


def test_a_report_missing_its_headline_metrics_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        write_report({"dataset": "known", "model": "0+test", "accuracy": 0.25}, tmp_path)
    assert not (tmp_path / "report.json").exists()


def test_write_report_replaces_an_existing_report(tmp_path: Path) -> None:
    first = {"dataset": "known", "model": "0+test", **compute_metrics(KNOWN_LABELS, KNOWN_PROBS, threshold=0.5)}
    second = {**first, "accuracy": 0.75}
    write_report({**first, "accuracy": 0.25}, tmp_path)
    write_report(second, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == second
    assert "0.7500" in (tmp_path / "report.md").read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_logit_adjustment_undoes_the_prior_shift_of_class_weights() -> None:
    # A weighted loss learns logits whose softmax is proportional to weight × true probability.
    true_fake = np.array([0.1, 0.5, 0.9])
    weights = np.array([1.0, 5.0])
    shifted = np.log(np.stack([1 - true_fake, true_fake], axis=1) * weights)
    adjustment = (float(np.log(weights[0])), float(np.log(weights[1])))
    np.testing.assert_allclose(fake_probabilities(shifted, 1.0, adjustment), true_fake)
    assert fake_probabilities(shifted)[1] == pytest.approx(5 / 6)


def test_auc_by_group_scores_each_group_alone_and_skips_single_class_groups() -> None:
    groups = ["lfw"] * 4 + ["ffhq"] * 4 + ["sdfd"] * 2
    labels = [0, 0, 1, 1, 0, 0, 1, 1, 1, 1]
    # lfw perfectly ranked, ffhq exactly inverted: pooled they would look middling
    probs = [0.1, 0.2, 0.8, 0.9, 0.7, 0.6, 0.3, 0.2, 0.9, 0.8]
    assert roc_auc_by_group(groups, labels, probs) == {"ffhq": 0.0, "lfw": 1.0}


def test_auc_by_group_refuses_groups_that_do_not_match_the_labels() -> None:
    with pytest.raises(ValueError, match="3 groups for 2 labels"):
        roc_auc_by_group(["a", "b", "c"], [0, 1], [0.2, 0.8])
