"""Choose the stability check's margin on validation faces, then report it on test faces.

A stratified sample of a split (the shipped model's faces-v2 split by default; up to `--per-group` images per source
and class, fixed seed) is judged from the original dataset files exactly as the service judges an upload (decode, face
detection, crop), once plain and once under each of `engine.VIEWS` (the three single degradations and the combined
copy the service scores). For each rule — the service's (`engine.STABILITY_VIEWS`) and, for comparison, every single
view and the three singles together — the margin is the 95th percentile of the probability spread among validation
faces the model gets right and decides (so a correct face moves that much 1 time in 20); the test sample then gives
the share of each verdict that turns uncertain and the accuracy on the faces that stay decided. `margin` at the top of
the JSON is the service rule's: `engine.STABILITY_MARGIN` and the model card's stability section are read from it.

    nice python scripts/stability_margin.py --per-group 95 --out docs/stability-margin.json

The JSON keeps every score so the choice can be checked or redone.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from detecteur.config import Settings
from detecteur.inference.engine import STABILITY_VIEWS, VIEWS, Detector, Verdict, decide, stability_of
from detecteur.inputs.decode import ImageError, decode_image
from detecteur.training import stability_report
from detecteur.training.card import split_file_of_card

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def dataset_file(crop: Path) -> Path | None:
    """The dataset's own file a split row's crop was cut from: splits list prepared crops
    (../../faces/<source>/<class>/<name>, or ../../faces-native/… saved as PNG), the service judges the original.
    None for crops with no dataset file (made-from-real fakes)."""
    relative = DATASETS / Path(*crop.parts[3:])
    if relative.is_file():
        return relative
    return next(iter(sorted(relative.parent.glob(f"{relative.stem}.*"))), None) if relative.parent.is_dir() else None


def sample(split_file: Path, split: str, per_group: int, seed: int) -> list[tuple[Path, int, str]]:
    groups: dict[tuple[str, str], list[tuple[Path, int, str]]] = defaultdict(list)
    with split_file.open() as handle:
        for row in csv.DictReader(handle):
            if row["split"] != split:
                continue
            path = dataset_file(Path(row["path"]))
            if path is not None:
                groups[(row["source"], row["label"])].append((path, int(row["label"]), row["source"]))
    rng = random.Random(seed)
    chosen: list[tuple[Path, int, str]] = []
    for key in sorted(groups):
        members = sorted(groups[key])
        rng.shuffle(members)
        chosen.extend(members[:per_group])
    return chosen


def score(detector: Detector, items: list[tuple[Path, int, str]]) -> list[dict[str, object]]:
    """Per image: the most suspicious face's probability plain and under each degradation."""
    rows: list[dict[str, object]] = []
    for path, label, source in items:
        try:
            image = decode_image(path.read_bytes()).image
        except (OSError, ImageError):
            continue
        judged = detector.judge(image, stability=True, margin=1.0, views=list(VIEWS))
        top = judged.most_suspicious
        assert top.stability is not None
        rows.append(
            {
                "path": str(path.relative_to(DATASETS)),
                "label": label,
                "source": source,
                "p": top.verdict.fake_probability,
                "degraded": top.stability.probabilities,
            }
        )
    return rows


def outcome(
    rows: list[dict[str, object]], detector: Detector, margin: float, views: tuple[str, ...] = STABILITY_VIEWS
) -> dict[str, object]:
    """Share of each plain verdict that turns uncertain under the rule on `views`, and accuracy on the decided."""
    turned: dict[str, list[bool]] = defaultdict(list)
    correct: list[bool] = []
    plain_correct: list[bool] = []
    for row in rows:
        plain = decide(float(row["p"]), detector.metadata)  # type: ignore[arg-type]
        degraded = [row["degraded"][name] for name in views]  # type: ignore[index]
        checked, _ = stability_of(plain, degraded, detector.metadata, margin, views)
        turned[plain.verdict].append(checked.verdict == "uncertain")
        if plain.verdict in ("authentic", "synthetic"):
            plain_correct.append(_right(plain, row))
        if checked.verdict in ("authentic", "synthetic"):
            correct.append(_right(checked, row))
    return {
        "margin": margin,
        "uncertain_share_by_plain_verdict": {k: float(np.mean(v)) for k, v in sorted(turned.items())},
        "uncertain_share": float(np.mean([u for v in turned.values() for u in v])),
        "decided": len(correct),
        "accuracy_decided": float(np.mean(correct)) if correct else None,
        "accuracy_decided_without_check": float(np.mean(plain_correct)) if plain_correct else None,
    }


def _right(verdict: Verdict, row: dict[str, object]) -> bool:
    return (verdict.verdict == "synthetic") == (row["label"] == 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=split_file_of_card(REPO / "models" / "MODEL_CARD.md"))
    parser.add_argument("--model", type=Path, default=REPO / Settings().model_path)
    parser.add_argument("--per-group", type=int, default=95)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs/stability-margin.json")
    parser.add_argument("--card", type=Path, default=REPO / "models/MODEL_CARD.md", help="model card to update")
    parser.add_argument("--scores-from", type=Path, help="a JSON this script wrote: redo the rules on its scores")
    args = parser.parse_args()

    detector = Detector(args.model, backend="onnxruntime", threads=args.threads)
    started = time.perf_counter()
    earlier: dict[str, Any] = {}
    if args.scores_from:  # the rules redone on the faces an earlier run scored (same model), without scoring again
        earlier = json.loads(args.scores_from.read_text())
        assert earlier["model"] == detector.metadata.version, "scores of another model"
        val, test = earlier["scores"]["validation"], earlier["scores"]["test"]
        args.per_group = earlier.get("per_group", args.per_group)
    else:
        val = score(detector, sample(args.split, "val", args.per_group, args.seed))
        test = score(detector, sample(args.split, "test", args.per_group, args.seed))
    rules = {"+".join(views): views for views in (STABILITY_VIEWS, *((name,) for name in VIEWS), SINGLES)}
    compared: dict[str, dict[str, Any]] = {}
    for name, views in rules.items():
        margin = margin_for(val, detector, views)
        compared[name] = {
            "views": list(views),
            "margin": margin,
            "validation": outcome(val, detector, margin, views),
            "test": outcome(test, detector, margin, views),
        }
    service = compared["+".join(STABILITY_VIEWS)]
    one_window = {name: rule for name, rule in compared.items() if len(rule["views"]) == 1}
    report = {
        "model": detector.metadata.version,
        "per_group": args.per_group,
        "views": list(STABILITY_VIEWS),
        # The service's rule is the one-window rule (one extra model window per face: the latency budget) whose
        # decided validation faces are most often right.
        "best_one_window_rule_on_validation": max(
            one_window, key=lambda name: one_window[name]["validation"]["accuracy_decided"]
        ),
        "rule": "uncertain when a decided face's probabilities straddle the threshold or spread more than margin",
        "margin": service["margin"],
        "margin_from": f"95th percentile of the spread over the correct, decided faces of {len(val)} validation "
        f"images ({args.per_group} at most per source and class)",
        "validation": service["validation"],
        "test": service["test"],
        "rules_compared": compared,
        "grid_validation": [outcome(val, detector, m) for m in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)],
        "seconds": earlier["seconds"] if args.scores_from else round(time.perf_counter() - started, 1),
        "scores": {"validation": val, "test": test},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.card.is_file():  # the card's stability section is written from this report, never typed in
        card = args.card.read_text()
        args.card.write_text(stability_report.replace_section(card, stability_report.section(report)))
    print(json.dumps({k: v for k, v in report.items() if k not in ("scores", "grid_validation")}, indent=1))


SINGLES = ("jpeg_q75", "resize_0.75", "shift_4px")


def margin_for(rows: list[dict[str, object]], detector: Detector, views: tuple[str, ...]) -> float:
    """The 95th percentile of the spread (original and `views`) over the correct, decided faces of `rows`."""
    spreads = []
    for row in rows:
        plain = decide(float(row["p"]), detector.metadata)  # type: ignore[arg-type]
        if plain.verdict in ("authentic", "synthetic") and _right(plain, row):
            everything = [float(row["p"]), *(row["degraded"][name] for name in views)]  # type: ignore[index, arg-type]
            spreads.append(max(everything) - min(everything))
    return round(float(np.quantile(spreads, 0.95)), 2)


if __name__ == "__main__":
    main()
