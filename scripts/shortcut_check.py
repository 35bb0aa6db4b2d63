"""Is there a shortcut left in the training input? Per source pairing, a tiny classifier on image statistics
that say nothing about forgery (JPEG tables, sharpness, blockiness) should be near chance.

Reads a split/manifest CSV of prepared face crops and, through `data/faces/faces.csv`, the original files.
Writes `<out>/shortcut_check.json` and `.md`. Usage:

    python scripts/shortcut_check.py data/splits/faces-v1/split.csv --faces data/faces --out models/figures \
        --recipe configs/faces-v3.toml
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import track
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detecteur.config import TrainConfig
from detecteur.files import atomic_write_text
from detecteur.inputs.preprocess import image_to_unit_tensor
from detecteur.training.data import read_records
from detecteur.training.sampling import sampling_weights, sharpness

COLUMNS = {
    "original_jpeg_table_auc": "JPEG table (original)",
    "original_sharpness_blockiness_auc": "sharpness+blockiness (original)",
    "training_input_sharpness_auc": "sharpness (training input)",
    "training_input_sharpness_blockiness_auc": "sharpness+blockiness (training input)",
    "training_split_sharpness_balanced_auc": "sharpness (train split, as the recipe samples it)",
}


def sharpness_and_blockiness(image: Image.Image) -> tuple[float, float]:
    """`sampling.sharpness` (the statistic training balances on), and the JPEG 8×8 grid's share of horizontal
    pixel differences."""
    gray = image_to_unit_tensor(image).mean(dim=0).numpy()
    differences = np.abs(np.diff(gray, axis=1)).mean(axis=0)
    on_grid = differences[7::8].mean()
    off_grid = np.delete(differences, np.s_[7::8]).mean()
    return sharpness(image), float(on_grid / (off_grid + 1e-12))


def jpeg_luma_table(path: Path) -> list[float]:
    with Image.open(path) as image:
        tables = getattr(image, "quantization", None) or {0: [0] * 64}
        return [float(v) for v in list(tables[0])[:16]]


def cross_validated_auc(features: np.ndarray, labels: np.ndarray) -> float:
    if len(set(labels.tolist())) < 2 or np.allclose(features.std(axis=0), 0):
        return 0.5
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    scores = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(labels, scores))


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """ROC AUC of one statistic under sampling weights, direction-free (0.5 = no information)."""
    if len(set(labels.tolist())) < 2:
        return float("nan")
    auc = float(roc_auc_score(labels, scores, sample_weight=weights))
    return max(auc, 1.0 - auc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--out", type=Path, default=Path("models/figures"))
    parser.add_argument("--recipe", type=Path, help="training recipe whose sampling weights the last column uses")
    args = parser.parse_args()

    records = read_records(args.manifest)
    originals: dict[str, Path] = {}
    with (args.faces / "faces.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            originals[str((args.faces / row["crop_path"]).resolve())] = Path(row["source_path"])

    rows = []
    for record in track(records, description="measuring"):
        original = originals[str(record.path)]
        with Image.open(record.path) as crop, Image.open(original) as source:
            crop_stats = sharpness_and_blockiness(crop.convert("RGB"))
            source_stats = sharpness_and_blockiness(source.convert("RGB"))
        rows.append((record.source, record.label, jpeg_luma_table(original), source_stats, crop_stats))

    sources = np.array([r[0] for r in rows])
    labels = np.array([r[1] for r in rows])
    original_tables = np.array([r[2] for r in rows])
    original_stats = np.array([r[3] for r in rows])
    crop_stats = np.array([r[4] for r in rows])
    # What training sees: the train split, sampled with the recipe's weights.
    recipe = TrainConfig.from_toml(args.recipe) if args.recipe else TrainConfig(balance_sharpness=True)
    in_train = np.array([record.split == "train" for record in records])
    weights = np.zeros(len(records))
    if in_train.any():
        train_records = [record for record, used in zip(records, in_train, strict=True) if used]
        weights[in_train] = sampling_weights(
            train_records, crop_stats[in_train, 0].tolist(), recipe.balance_sources, recipe.balance_sharpness
        )
    reals = labels == 0
    pairings = {
        "stylegan-ffhq (real vs fake)": sources == "stylegan-ffhq",
        "lfw-faceswap (real vs fake)": sources == "lfw-faceswap",
        "sdfd-sd21 fakes vs all reals": reals | (sources == "sdfd-sd21"),
        "stylegan2-tpdne fakes vs all reals": reals | (sources == "stylegan2-tpdne"),
        "all reals vs all fakes": np.ones_like(reals),
    }
    results = {}
    for name, mask in pairings.items():
        results[name] = {
            "n": int(mask.sum()),
            "original_jpeg_table_auc": cross_validated_auc(original_tables[mask], labels[mask]),
            "original_sharpness_blockiness_auc": cross_validated_auc(original_stats[mask], labels[mask]),
            "training_input_sharpness_auc": cross_validated_auc(crop_stats[mask][:, :1], labels[mask]),
            "training_input_sharpness_blockiness_auc": cross_validated_auc(crop_stats[mask], labels[mask]),
            "training_split_sharpness_balanced_auc": weighted_auc(
                crop_stats[mask & in_train, 0], labels[mask & in_train], weights[mask & in_train]
            ),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "shortcut_check.json", json.dumps(results, indent=2) + "\n")
    lines = [
        "| pairing | n | " + " | ".join(COLUMNS.values()) + " |",
        "| --- | ---: |" + " ---: |" * len(COLUMNS),
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['n']} | " + " | ".join(f"{r[key]:.3f}" for key in COLUMNS) + " |")
    table = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "shortcut_check.md", table)
    print(table)


if __name__ == "__main__":
    main()
