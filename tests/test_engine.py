from __future__ import annotations

import pytest

from detecteur.engine import decide
from tests.test_model import metadata_for


@pytest.mark.parametrize(
    ("fake_probability", "verdict"),
    [
        (0.05, "authentic"),
        (0.29, "authentic"),
        (0.3, "borderline"),
        (0.5, "borderline"),
        (0.7, "borderline"),
        (0.71, "synthetic"),
        (0.99, "synthetic"),
    ],
)
def test_verdict_uses_the_threshold_and_borderline_band_of_the_model_file(
    fake_probability: float, verdict: str
) -> None:
    assert decide(fake_probability, metadata_for(threshold=0.5)).verdict == verdict


def test_confidence_is_the_probability_of_the_more_likely_class() -> None:
    assert decide(0.2, metadata_for()).confidence == pytest.approx(0.8)
    assert decide(0.9, metadata_for()).confidence == pytest.approx(0.9)


def test_a_low_threshold_widens_the_synthetic_side() -> None:
    metadata = metadata_for(threshold=0.2, borderline_band=(0.15, 0.25))
    assert decide(0.3, metadata).verdict == "synthetic"
    assert decide(0.1, metadata).verdict == "authentic"
