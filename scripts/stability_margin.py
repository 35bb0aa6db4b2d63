"""Choose the stability check's margin on validation faces, then report it on test faces.

A stratified sample of the faces-v1 split (up to `--per-group` images per source and class, fixed seed) is judged
from the original dataset files exactly as the service judges an upload (decode, face detection, crop), once plain
and once under each of `engine.DEGRADATIONS`. The margin is the 95th percentile of the probability spread among
validation faces the model gets right and decides (so a correct face moves that much 1 time in 20); the test sample
then gives the share of each verdict that turns uncertain and the accuracy on the faces that stay decided.

    nice python scripts/stability_margin.py --per-group 12 --out docs/stability-margin.json

The sample is small on purpose (it runs on a laptop CPU in a few minutes): the margin it gives is provisional, and
the JSON keeps every score so the choice can be checked or redone on more faces.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from detecteur.config import Settings
from detecteur.inference.engine import DEGRADATIONS, Detector, Verdict, decide, stability_of
from detecteur.inputs.decode import ImageError, decode_image

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def sample(split_file: Path, split: str, per_group: int, seed: int) -> list[tuple[Path, int, str]]:
    groups: dict[tuple[str, str], list[tuple[Path, int, str]]] = defaultdict(list)
    with split_file.open() as handle:
        for row in csv.DictReader(handle):
            if row["split"] != split:
                continue
            # faces-v1 lists prepared crops (../../faces/<source>/<class>/<name>); judge the dataset's own file.
            relative = Path(*Path(row["path"]).parts[3:])
            path = DATASETS / relative
            if path.is_file():
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
        judged = detector.judge(image, stability=True, margin=1.0)
        top = judged.most_suspicious
        assert top.stability is not None
        rows.append(
            {
                "path": str(path.relative_to(DATASETS)),
                "label": label,
                "source": source,
                "p": top.verdict.fake_probability,
                "degraded": [top.stability.probabilities[name] for name in DEGRADATIONS],
            }
        )
    return rows


def outcome(rows: list[dict[str, object]], detector: Detector, margin: float) -> dict[str, object]:
    """Share of each plain verdict that turns uncertain, and accuracy on the decided faces."""
    turned: dict[str, list[bool]] = defaultdict(list)
    correct: list[bool] = []
    plain_correct: list[bool] = []
    for row in rows:
        plain = decide(float(row["p"]), detector.metadata)  # type: ignore[arg-type]
        checked, _ = stability_of(plain, row["degraded"], detector.metadata, margin)  # type: ignore[arg-type]
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
    parser.add_argument("--split", type=Path, default=REPO / "data/splits/faces-v1/split.csv")
    parser.add_argument("--model", type=Path, default=REPO / Settings().model_path)
    parser.add_argument("--per-group", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs/stability-margin.json")
    args = parser.parse_args()

    detector = Detector(args.model, backend="onnxruntime")
    started = time.perf_counter()
    val = score(detector, sample(args.split, "val", args.per_group, args.seed))
    test = score(detector, sample(args.split, "test", args.per_group, args.seed))
    spreads = []
    for row in val:
        plain = decide(float(row["p"]), detector.metadata)  # type: ignore[arg-type]
        if plain.verdict in ("authentic", "synthetic") and _right(plain, row):
            everything = [row["p"], *row["degraded"]]  # type: ignore[misc]
            spreads.append(max(everything) - min(everything))
    margin = round(float(np.quantile(spreads, 0.95)), 2)
    report = {
        "model": detector.metadata.version,
        "degradations": list(DEGRADATIONS),
        "rule": "uncertain when a decided face's probabilities straddle the threshold or spread more than margin",
        "margin": margin,
        "margin_from": f"95th percentile of the spread over {len(spreads)} correct, decided validation faces",
        "validation": outcome(val, detector, margin),
        "test": outcome(test, detector, margin),
        "grid_validation": [outcome(val, detector, m) for m in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)],
        "seconds": round(time.perf_counter() - started, 1),
        "scores": {"validation": val, "test": test},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("scores", "grid_validation")}, indent=1))


if __name__ == "__main__":
    main()
