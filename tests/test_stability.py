"""The stability check: deterministic degradations scored in the same batch, and the rule that turns a decided
verdict "uncertain"."""

from __future__ import annotations

import numpy as np
from PIL import Image

from detecteur.inference.engine import DEGRADATIONS, Verdict, decide, degrade, stability_of
from tests.test_model import metadata_for

METADATA = metadata_for(threshold=0.5, borderline_band=(0.45, 0.55))


def crop() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


def test_degradations_are_deterministic_and_one_per_name() -> None:
    first, second = degrade(crop()), degrade(crop())
    assert len(first) == len(DEGRADATIONS) == 3
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    jpeg, smaller, shifted = first
    assert jpeg.size == shifted.size == (64, 64) and smaller.size == (48, 48)
    assert np.array_equal(np.asarray(shifted)[4:, 4:], np.asarray(crop())[:-4, :-4])


def test_a_verdict_that_holds_stays_decided() -> None:
    verdict, stability = stability_of(decide(0.9, METADATA), [0.85, 0.88, 0.93], METADATA, margin=0.2)
    assert verdict.verdict == "synthetic" and stability.stable
    assert abs(stability.spread - 0.08) < 1e-9


def test_straddling_the_threshold_or_a_wide_spread_is_uncertain() -> None:
    straddles, check = stability_of(decide(0.2, METADATA), [0.2, 0.51, 0.25], METADATA, margin=0.9)
    spreads, wide = stability_of(decide(0.95, METADATA), [0.6, 0.9, 0.95], METADATA, margin=0.2)
    assert straddles.verdict == "uncertain" and check.straddles_threshold and not check.stable
    assert spreads.verdict == "uncertain" and not wide.straddles_threshold and not wide.stable
    # The probability and confidence stay the original's: "uncertain" qualifies them, it does not replace them.
    assert spreads.fake_probability == 0.95 and spreads.confidence == 0.95


def test_a_borderline_verdict_stays_borderline() -> None:
    verdict, stability = stability_of(Verdict(0.5, "borderline", 0.5), [0.1, 0.9, 0.5], METADATA, margin=0.2)
    assert verdict.verdict == "borderline" and not stability.stable
