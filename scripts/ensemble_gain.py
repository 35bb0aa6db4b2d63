"""Would averaging these models' logits beat the first one alone? Validation split only (never test).

Prints each model's validation ROC AUC (overall and per two-class source), the AUC of their mean logit margin,
the correlation of their margins (low correlation = different errors = room for an ensemble), and a paired
bootstrap of the ensemble's AUC gain over the first model. This is the check behind 0.8.0 (README):

    python scripts/ensemble_gain.py data/splits/faces-v1/split.csv \\
        runs/faces-v10/best.safetensors runs/faces-lite2-v2/best.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from detecteur.model.networks import load_model, pick_device, predict_logits
from detecteur.training.data import make_loader, read_records, select_split
from detecteur.training.metrics import roc_auc_by_group


def validation_margins(model_file: Path, split_file: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(synthetic − authentic logit per validation image, labels, sources)."""
    records = select_split(read_records(split_file), "val")
    device = pick_device("cpu")
    model, metadata = load_model(model_file, device)
    loader = make_loader(records, metadata.input_spec, None, 32, 2, seed=0, shuffle=False)
    logits, labels = predict_logits(model, loader, device)
    return logits[:, 1].astype(np.float64) - logits[:, 0], labels, [record.source for record in records]


def bootstrap_gain(labels: np.ndarray, base: np.ndarray, candidate: np.ndarray, rounds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(rounds):
        sample = rng.integers(0, len(labels), len(labels))
        gains.append(roc_auc_score(labels[sample], candidate[sample]) - roc_auc_score(labels[sample], base[sample]))
    return np.asarray(gains)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", type=Path)
    parser.add_argument("models", type=Path, nargs="+", help="model files; the first is the one to beat")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("name at least 2 model files")

    margins = []
    for model_file in args.models:
        margin, labels, sources = validation_margins(model_file, args.split)
        margins.append(margin)
        by_source = roc_auc_by_group(sources, labels, expit(margin))  # a monotone map: same AUC
        print(f"{model_file}: validation AUC {roc_auc_score(labels, margin):.4f}, by source {by_source}")
    average = np.mean(margins, axis=0)
    print(
        f"mean logit margin: validation AUC {roc_auc_score(labels, average):.4f}, "
        f"by source {roc_auc_by_group(sources, labels, expit(average))}"
    )
    print(f"margin correlation matrix:\n{np.round(np.corrcoef(margins), 4)}")
    gains = bootstrap_gain(labels, margins[0], average, args.rounds, args.seed)
    low, high = np.percentile(gains, [2.5, 97.5])
    print(
        f"gain over {args.models[0]}: {gains.mean():+.4f}, 95 % interval [{low:+.4f}, {high:+.4f}], "
        f"P(gain <= 0) = {(gains <= 0).mean():.4f} ({args.rounds} paired bootstrap resamples)"
    )


if __name__ == "__main__":
    main()
