"""Int8 against fp32, in one run: `quantise.quantise_model` on the served model (calibrated on validation faces of
its split, measured on the test faces: AUC, ECE, forward speed at batch 1 and 32), the int8 graph written beside the
model file, and the figures in benchmarks/results/int8.json. Whether the service then serves int8 by default is
the report's `passed` (issue 22's gates: AUC within 0.002, ECE within 0.005, ≥ 1.5× faster).

The split's crop files must exist (`detecteur data faces`, docs/training.md); skipped with a message otherwise.

    .venv/bin/python benchmarks/int8.py [--split SPLIT_CSV] [--calibration-images 256] [--fp32-convolutions 1]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from benchlib import ROOT, Record, cpu_cores

from detecteur.config import CALIBRATION_IMAGES, FP32_CONVOLUTIONS, Settings
from detecteur.files import atomic_write_text, file_sha256
from detecteur.model.quantise import QuantisationError
from detecteur.training import int8_report
from detecteur.training.card import split_file_of_card
from detecteur.training.int8 import quantise_model

DEFAULT_SPLIT = split_file_of_card(ROOT / "models" / "MODEL_CARD.md")  # the shipped model's own split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT, help="the served model's split CSV")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    parser.add_argument("--fp32-convolutions", type=int, default=FP32_CONVOLUTIONS)
    args = parser.parse_args()

    model_path = Settings().model_path
    record = Record(
        "int8",
        model=str(model_path),
        split=str(args.split),
        calibration_images=args.calibration_images,
        fp32_convolutions=args.fp32_convolutions,
    )
    try:
        graph, report = quantise_model(
            model_path,
            args.split,
            None,
            args.calibration_images,
            threads=cpu_cores(),
            say=print,
            fp32_convolutions=args.fp32_convolutions,
        )
    except QuantisationError as error:
        print(f"int8 skipped: {error}")
        return
    print(f"wrote {graph}: {asdict(report)}")
    record.write({"graph": graph.name, **asdict(report)})
    write_card_section(model_path)


def write_card_section(model_path: Path) -> None:
    """The model card's int8 section, from the results just written, when the card is the measured model's."""
    card_path = ROOT / "models" / "MODEL_CARD.md"
    card = card_path.read_text() if card_path.is_file() else ""
    if f"# Model card — `{model_path.name}`" not in card:
        print(f"{card_path} is not {model_path.name}'s card: its int8 section is left as it is")
        return
    lines = int8_report.section_for(file_sha256(model_path))
    atomic_write_text(card_path, int8_report.replace_section(card, lines))
    print(f"wrote the int8 section of {card_path}")


if __name__ == "__main__":
    main()
