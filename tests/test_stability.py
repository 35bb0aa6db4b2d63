"""The stability check: deterministic degradations scored in the same batch, and the rule that turns a decided
verdict "uncertain"."""

from __future__ import annotations

import numpy as np
from PIL import Image

from detecteur.config import Settings
from detecteur.inference.engine import (
    CHECKOUT_ROOT,
    STABILITY_MARGIN,
    STABILITY_VIEWS,
    VIEWS,
    Verdict,
    decide,
    degrade,
    jpeg_q75,
    shift_4px,
    shrink_075,
    stability_of,
)
from detecteur.model.file import read_metadata
from detecteur.training import stability_report
from tests.test_model import metadata_for

METADATA = metadata_for(threshold=0.5, borderline_band=(0.45, 0.55))


def crop() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


THREE = ("jpeg_q75", "resize_0.75", "shift_4px")


def test_degradations_are_deterministic_and_one_per_name() -> None:
    first, second = degrade(crop(), list(VIEWS)), degrade(crop(), list(VIEWS))
    assert len(first) == len(VIEWS) == 4
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    jpeg, smaller, shifted, combined = first
    assert jpeg.size == shifted.size == (64, 64) and smaller.size == combined.size == (48, 48)
    assert np.array_equal(np.asarray(shifted)[4:, 4:], np.asarray(crop())[:-4, :-4])
    assert np.array_equal(np.asarray(combined), np.asarray(jpeg_q75(shrink_075(shift_4px(crop())))))


def test_the_service_scores_one_degraded_copy_per_face() -> None:
    assert len(STABILITY_VIEWS) == 1 and set(STABILITY_VIEWS) <= set(VIEWS)
    assert len(degrade(crop())) == 1


def test_a_verdict_that_holds_stays_decided() -> None:
    verdict, stability = stability_of(decide(0.9, METADATA), [0.85, 0.88, 0.93], METADATA, margin=0.2, views=THREE)
    assert verdict.verdict == "synthetic" and stability.stable
    assert abs(stability.spread - 0.08) < 1e-9


def test_straddling_the_threshold_or_a_wide_spread_is_uncertain() -> None:
    straddles, check = stability_of(decide(0.2, METADATA), [0.2, 0.51, 0.25], METADATA, margin=0.9, views=THREE)
    spreads, wide = stability_of(decide(0.95, METADATA), [0.6, 0.9, 0.95], METADATA, margin=0.2, views=THREE)
    assert straddles.verdict == "uncertain" and check.straddles_threshold and not check.stable
    assert spreads.verdict == "uncertain" and not wide.straddles_threshold and not wide.stable
    # The probability and confidence stay the original's: "uncertain" qualifies them, it does not replace them.
    assert spreads.fake_probability == 0.95 and spreads.confidence == 0.95


def test_a_borderline_verdict_stays_borderline() -> None:
    verdict, stability = stability_of(
        Verdict(0.5, "borderline", 0.5), [0.1, 0.9, 0.5], METADATA, margin=0.2, views=THREE
    )
    assert verdict.verdict == "borderline" and not stability.stable


def test_every_view_is_described_for_the_model_card() -> None:
    assert set(stability_report.VIEW_WORDS) == set(VIEWS)


def test_the_card_section_is_replaced_in_place_or_put_before_the_figures() -> None:
    lines = [stability_report.SECTION_TITLE, "", "new text", ""]
    card = f"# Card\n\n{stability_report.SECTION_TITLE}\n\nold text\n\n## Figures\n\nx\n"
    assert stability_report.replace_section(card, lines) == "# Card\n\n" + "\n".join(lines) + "\n## Figures\n\nx\n"
    bare = "# Card\n\n## Figures\n\nx\n"
    assert stability_report.replace_section(bare, lines) == "# Card\n\n" + "\n".join(lines) + "\n## Figures\n\nx\n"


def test_the_shipped_card_and_margin_come_from_the_margin_report() -> None:
    version = read_metadata(CHECKOUT_ROOT / Settings().model_path).version
    card = (CHECKOUT_ROOT / "models" / "MODEL_CARD.md").read_text()
    assert "\n".join(stability_report.section_for(version)) in card, "rerun scripts/stability_margin.py"
    report = stability_report.read_report()
    if report is not None and report["model"] == version:
        assert report["margin"] == STABILITY_MARGIN and tuple(report["views"]) == STABILITY_VIEWS
