"""The stability check's margin, as `scripts/stability_margin.py` chose it (`docs/stability-margin.json`), and the
model card's section on it, written from that file so no figure in it is typed in (`card.ship` and the script both
write the section; a test checks the shipped card against the file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detecteur.inference.engine import CHECKOUT_ROOT
from detecteur.training import card_sections

STABILITY_REPORT = CHECKOUT_ROOT / "docs" / "stability-margin.json"
SECTION_TITLE = "## Stability check (`scripts/stability_margin.py`, `docs/stability-margin.json`)"
VIEW_WORDS = {
    "combined": "moved 4 px, shrunk to 0.75× and re-saved as JPEG q75, in one copy",
    "jpeg_q75": "re-saved as JPEG q75",
    "resize_0.75": "shrunk to 0.75×",
    "shift_4px": "moved 4 px",
}


def read_report(path: Path = STABILITY_REPORT) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def section_for(version: str, path: Path = STABILITY_REPORT) -> list[str]:
    """The section for the model shipped as `version`: from the report when it was made on that model, else a
    line saying the margin has not been chosen on it yet."""
    report = read_report(path)
    if report is not None and report.get("model") == version:
        return section(report)
    return card_sections.not_yet_measured(
        SECTION_TITLE,
        f"Not yet measured on {version}: run `python scripts/stability_margin.py` (it writes the margin, its "
        "figures and this section); until then the service uses `engine.STABILITY_MARGIN`, chosen on an earlier "
        "model.",
    )


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _row(name: str, outcome: dict[str, Any], images: int) -> str:
    shares = outcome["uncertain_share_by_plain_verdict"]
    return (
        f"| {name} ({images}) | {_share(outcome['uncertain_share'])} | {_share(shares.get('authentic'))} | "
        f"{_share(shares.get('synthetic'))} | {_share(outcome['accuracy_decided'])} ({outcome['decided']} faces) / "
        f"{_share(outcome['accuracy_decided_without_check'])} |"
    )


def section(report: dict[str, Any]) -> list[str]:
    """The model card's stability section, from `report` (the JSON the script writes)."""
    scores = report["scores"]
    views = ", ".join(f"`{name}` ({VIEW_WORDS[name]})" for name in report["views"])
    lines = [
        SECTION_TITLE,
        "",
        f"Each face is also scored on {views}; a decided face whose probabilities straddle the threshold or spread "
        f"more than **{report['margin']}** is reported `uncertain`. The margin is the {report['margin_from']}; the "
        f"test figures come from a disjoint test sample ({len(scores['test'])} images). Model {report['model']}.",
        "",
        "| sample | verdicts turned uncertain | of `authentic` | of `synthetic` | accuracy on the decided, with / "
        "without the check |",
        "|---|---|---|---|---|",
        _row("validation", report["validation"], len(scores["validation"])),
        _row("test", report["test"], len(scores["test"])),
        "",
    ]
    if compared := report.get("rules_compared"):
        lines += [
            "The rules compared on the same faces (each margin chosen on validation the same way; test figures):",
            "",
            "| views scored | extra model windows | margin | test verdicts turned uncertain | test accuracy on "
            "the decided |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {' + '.join(f'`{v}`' for v in rule['views'])} | {len(rule['views'])} | {rule['margin']} | "
                f"{_share(rule['test']['uncertain_share'])} | {_share(rule['test']['accuracy_decided'])} |"
                for rule in compared.values()
            ],
            "",
        ]
    lines += [
        "Borderline faces stay borderline. Cost: one more model window per face for each view scored "
        "(`benchmarks/stability_latency.py`).",
        "",
    ]
    return lines


def replace_section(card: str, lines: list[str]) -> str:
    """`card` (markdown) with its stability section replaced by `lines`, or `lines` put before `## Figures`."""
    return card_sections.replace_section(card, SECTION_TITLE, lines)
