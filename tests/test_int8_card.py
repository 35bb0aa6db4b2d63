"""The model card's int8 section (issue 22: "the card states both" AUC and ECE), written from the int8 benchmark's
results when they were measured on the card's own model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detecteur.config import Settings
from detecteur.files import file_sha256
from detecteur.inference.engine import CHECKOUT_ROOT
from detecteur.training import int8_report


def results(passed: bool, sha256: str = "ab" * 32) -> dict[str, Any]:
    return {
        "model_sha256": sha256,
        "calibration_images": 128,
        "test_images": 1088,
        "fp32_convolutions": 1,
        "fp32": {"roc_auc": 0.97377, "ece": 0.04752},
        "int8": {"roc_auc": 0.97126, "ece": 0.04848},
        "forward_ms_p50": {"fp32": {"batch1": 4.04, "batch32": 95.57}, "int8": {"batch1": 2.46, "batch32": 48.04}},
        "speed_up": {"batch1": 1.642, "batch32": 1.989},
        "passed": passed,
        "reasons": [] if passed else ["test AUC drops by 0.0025 (> 0.002)"],
    }


def test_the_section_states_both_graphs_auc_and_ece_and_why_int8_is_not_served() -> None:
    text = "\n".join(int8_report.section(results(passed=False)))
    assert "| fp32 | 0.9738 | 0.0475 |" in text and "| int8 | 0.9713 | 0.0485 |" in text
    assert "**Not served** (fp32 is): test AUC drops by 0.0025 (> 0.002)." in text
    assert "**Served**." in "\n".join(int8_report.section(results(passed=True)))


def test_results_of_another_model_file_are_not_quoted(tmp_path: Path) -> None:
    import json

    path = tmp_path / "int8.json"
    path.write_text(json.dumps({"results": results(passed=True, sha256="cd" * 32)}))
    assert "Not yet measured" in "\n".join(int8_report.section_for("ab" * 32, path))
    assert "**Served**." in "\n".join(int8_report.section_for("cd" * 32, path))
    assert "Not yet measured" in "\n".join(int8_report.section_for("ab" * 32, tmp_path / "absent.json"))


def test_the_shipped_card_quotes_the_int8_results_of_its_own_model_file() -> None:
    card = (CHECKOUT_ROOT / "models" / "MODEL_CARD.md").read_text()
    section = int8_report.section_for(file_sha256(CHECKOUT_ROOT / Settings().model_path))
    assert "\n".join(section) in card, "rerun benchmarks/int8.py (it writes the card's int8 section)"
