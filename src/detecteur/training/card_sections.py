"""Sections of the model card that scripts rewrite after shipping (the stability margin, int8), each written from
the file the script measured into, so no figure in a section is typed in."""

from __future__ import annotations

import re


def replace_section(card: str, title: str, lines: list[str]) -> str:
    """`card` (markdown) with the section headed `title` replaced by `lines`, or `lines` put before `## Figures`."""
    text = "\n".join(lines) + "\n"
    pattern = re.compile(re.escape(title) + r"\n.*?(?=^## )", re.DOTALL | re.MULTILINE)
    if pattern.search(card):
        return pattern.sub(lambda _: text, card, count=1)
    return card.replace("## Figures\n", text + "## Figures\n", 1)


def not_yet_measured(title: str, text: str) -> list[str]:
    """The section headed `title` before its script has measured the shipped model: `text` says what to run."""
    return [title, "", text, ""]
