"""The model card's int8 section, written from `benchmarks/results/int8.json` (`benchmarks/int8.py`) when that file
was measured on the very model file the card describes (its sha256): the card states the int8 graph's test AUC and
ECE against fp32 whether or not it passed the gates (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detecteur.inference.engine import CHECKOUT_ROOT
from detecteur.model.quantise import MAX_AUC_DROP, MAX_ECE_RISE, MIN_SPEED_UP
from detecteur.training import card_sections

INT8_RESULTS = CHECKOUT_ROOT / "benchmarks" / "results" / "int8.json"
SECTION_TITLE = "## Int8 (`benchmarks/int8.py`, `benchmarks/results/int8.json`)"


def read_results(path: Path = INT8_RESULTS) -> dict[str, Any] | None:
    """The `results` of the last int8 benchmark, or None when it has not run."""
    return dict(json.loads(path.read_text())["results"]) if path.is_file() else None


def section_for(model_sha256: str, path: Path = INT8_RESULTS) -> list[str]:
    """The section for the model file whose sha256 is `model_sha256`: from the results when they were measured on
    it, else a line saying int8 has not been measured on it yet."""
    results = read_results(path)
    if results is not None and results.get("model_sha256") == model_sha256:
        return section(results)
    return card_sections.not_yet_measured(
        SECTION_TITLE,
        "Not yet measured on this model file: run `python benchmarks/int8.py` (it quantises the model, measures it "
        "against fp32 on the test faces and writes this section). fp32 is served.",
    )


def section(results: dict[str, Any]) -> list[str]:
    fp32, int8 = results["fp32"], results["int8"]
    forward, speed_up = results["forward_ms_p50"], results["speed_up"]
    served = "**Served**" if results["passed"] else "**Not served** (fp32 is): " + "; ".join(results["reasons"])
    return [
        SECTION_TITLE,
        "",
        f"Static int8 quantisation with ONNX Runtime, calibrated on {results['calibration_images']} validation faces, "
        f"the first {results.get('fp32_convolutions', 0)} convolution(s) kept fp32; measured on the "
        f"{results['test_images']} test faces against the fp32 graph. Gates: test AUC within {MAX_AUC_DROP}, ECE "
        f"within {MAX_ECE_RISE}, forward pass at least {MIN_SPEED_UP}× faster.",
        "",
        "| graph | test ROC AUC | test ECE | forward p50, batch 1 | forward p50, batch 32 |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| fp32 | {fp32['roc_auc']:.4f} | {fp32['ece']:.4f} | {forward['fp32']['batch1']} ms | "
        f"{forward['fp32']['batch32']} ms |",
        f"| int8 | {int8['roc_auc']:.4f} | {int8['ece']:.4f} | {forward['int8']['batch1']} ms "
        f"({speed_up['batch1']}× faster) | {forward['int8']['batch32']} ms ({speed_up['batch32']}× faster) |",
        "",
        f"{served}.",
        "",
    ]


def replace_section(card: str, lines: list[str]) -> str:
    return card_sections.replace_section(card, SECTION_TITLE, lines)
