"""Evaluation and training figures, one PNG per function; each returns the path it wrote.

Uses matplotlib's Agg backend so figures render on headless training machines and in CI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from detecteur.config import LABEL_NAMES, SYNTHETIC
from detecteur.training.metrics import expected_calibration_error, reliability_bins

DPI = 120

# (JSONL key, legend label) per panel of the training curves.
LOSS_SERIES: tuple[tuple[str, str], ...] = (("train_loss", "train loss"), ("val_loss", "validation loss"))
QUALITY_SERIES: tuple[tuple[str, str], ...] = (
    ("val_auc", "validation ROC AUC"),
    ("val_accuracy", "validation accuracy"),
    ("train_accuracy", "train accuracy"),
)

# Each epoch of a training log holds {source: validation AUC} under this key (logs of older runs lack it).
BY_SOURCE_KEY = "val_auc_by_source"


def _save(figure: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.tight_layout()
        figure.savefig(out, dpi=DPI)
    finally:
        plt.close(figure)
    return out


def _scored(labels: npt.ArrayLike, fake_probs: npt.ArrayLike) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    label_array = np.asarray(labels)
    prob_array = np.asarray(fake_probs, dtype=np.float64)
    if np.unique(label_array).size != 2:
        raise ValueError("this curve needs both authentic and synthetic labels")
    return label_array, prob_array


def _read_epochs(metrics_jsonl: Path) -> list[dict[str, Any]]:
    records = []
    with metrics_jsonl.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                if isinstance(record, dict) and "epoch" in record:
                    records.append(record)
    return records


def _draw_series(axes: Axes, records: list[dict[str, Any]], series: Sequence[tuple[str, str]]) -> None:
    drawn = False
    for key, label in series:
        points = [(record["epoch"], record[key]) for record in records if record.get(key) is not None]
        if points:
            epochs, values = zip(*points, strict=True)
            axes.plot(epochs, values, marker="o", label=label)
            drawn = True
    if drawn:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)


def plot_training_curves(metrics_jsonl: Path, out: Path) -> Path:
    """Loss (train vs validation) and validation AUC / accuracy per epoch, from training's JSONL log.

    Lines without an "epoch" key are ignored, as are metrics a run did not record. Raises ValueError when the
    file holds no epochs.
    """
    records = _read_epochs(metrics_jsonl)
    if not records:
        raise ValueError(f"{metrics_jsonl} holds no epochs: nothing to plot")
    sources = sorted({source for record in records for source in record.get(BY_SOURCE_KEY) or {}})
    figure, panels = plt.subplots(1, 3 if sources else 2, figsize=(16.5 if sources else 11, 4))
    loss_axes, quality_axes = panels[0], panels[1]
    _draw_series(loss_axes, records, LOSS_SERIES)
    loss_axes.set_ylabel("cross-entropy loss")
    loss_axes.set_title("Loss")
    _draw_series(quality_axes, records, QUALITY_SERIES)
    quality_axes.set_ylabel("score")
    quality_axes.set_title("AUC and accuracy")
    if sources:
        # Flattened to plain keys so one source is one line, drawn like the other panels.
        flat = [{"epoch": r["epoch"], **(r.get(BY_SOURCE_KEY) or {})} for r in records]
        _draw_series(panels[2], flat, [(source, source) for source in sources])
        panels[2].set_ylabel("validation ROC AUC")
        panels[2].set_title("Validation AUC per source")
    return _save(figure, out)


def plot_roc(labels: npt.ArrayLike, fake_probs: npt.ArrayLike, out: Path, title: str = "ROC") -> Path:
    """ROC curve of the synthetic class with its AUC and the chance diagonal. Needs both classes."""
    label_array, prob_array = _scored(labels, fake_probs)
    fpr, tpr, _ = roc_curve(label_array, prob_array, pos_label=SYNTHETIC)
    auc = float(roc_auc_score(label_array, prob_array))
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(fpr, tpr, label=f"model (AUC = {auc:.4f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set_xlabel("false positive rate (authentic called synthetic)")
    axes.set_ylabel("true positive rate (synthetic detected)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_title(title)
    axes.legend(loc="lower right")
    return _save(figure, out)


def plot_precision_recall(
    labels: npt.ArrayLike, fake_probs: npt.ArrayLike, out: Path, title: str = "Precision–recall"
) -> Path:
    """Precision–recall curve of the synthetic class, its average precision and the prevalence baseline."""
    label_array, prob_array = _scored(labels, fake_probs)
    precision, recall, _ = precision_recall_curve(label_array, prob_array, pos_label=SYNTHETIC)
    average_precision = float(average_precision_score(label_array, prob_array))
    prevalence = float(np.mean(label_array == SYNTHETIC))
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.step(recall, precision, where="post", label=f"model (AP = {average_precision:.4f})")
    axes.axhline(prevalence, linestyle="--", color="grey", label=f"chance ({prevalence:.2f})")
    axes.set_xlabel("recall (synthetic detected)")
    axes.set_ylabel("precision (synthetic calls that are right)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_title(title)
    axes.legend(loc="lower left")
    return _save(figure, out)


def plot_reliability(labels: npt.ArrayLike, probs_before: npt.ArrayLike, probs_after: npt.ArrayLike, out: Path) -> Path:
    """Reliability diagram before and after temperature scaling (ECE in the legend), counts per bin below."""
    figure, (curve_axes, count_axes) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    curve_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for name, probs, offset in (("before", probs_before, -0.25), ("after", probs_after, 0.25)):
        bins = reliability_bins(labels, probs)
        ece = expected_calibration_error(labels, probs)
        filled = bins.counts > 0
        curve_axes.plot(
            bins.mean_fake_probability[filled],
            bins.observed_synthetic_fraction[filled],
            marker="o",
            label=f"{name} scaling (ECE = {ece:.4f})",
        )
        width = float(np.diff(bins.edges)[0])
        centres = (bins.edges[:-1] + bins.edges[1:]) / 2
        count_axes.bar(centres + offset * width, bins.counts, width=width / 2, label=name)
    curve_axes.set_ylabel("observed fraction synthetic")
    curve_axes.set_xlim(0, 1)
    curve_axes.set_ylim(0, 1)
    curve_axes.set_title("Reliability")
    curve_axes.legend(loc="upper left")
    count_axes.set_xlabel("predicted probability synthetic")
    count_axes.set_ylabel("images")
    count_axes.legend()
    return _save(figure, out)


def plot_confusion_matrix(
    matrix: npt.ArrayLike, out: Path, labels: Sequence[str] = LABEL_NAMES, title: str = "Confusion matrix"
) -> Path:
    """Confusion matrix with counts in each cell; rows are true classes, columns predicted ones."""
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {len(labels)} labels")
    figure, axes = plt.subplots(figsize=(4.5, 4))
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    # Dark text on light cells and light text on dark ones keeps every count readable.
    midpoint = counts.max() / 2 if counts.size else 0
    for row, column in np.ndindex(counts.shape):
        colour = "white" if counts[row, column] > midpoint else "black"
        axes.text(column, row, str(counts[row, column]), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    return _save(figure, out)


def plot_examples(examples: Sequence[dict[str, Any]], out: Path, columns: int = 6, title: str = "") -> Path:
    """Contact sheet of images, each titled with its true label and fake probability (`examples` as in a
    report's `hardest_errors`: dicts with `path`, `label`, `fake_probability`)."""
    rows = max(1, -(-len(examples) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.3 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, example in zip(grid.flat, examples, strict=False):
        with Image.open(example["path"]) as image:
            axes.imshow(np.asarray(image.convert("RGB")))
        axes.set_title(f"{example['label']}\nP(synthetic) {example['fake_probability']:.2f}", fontsize=8)
    if title:
        figure.suptitle(title)
    return _save(figure, out)


def plot_logo_gallery(report: dict[str, Any], out: Path, condition: str = "web") -> Path:
    """The worst failures of a leave-one-generator-out sweep (`logo.json`): per fold, the held-out fakes scored
    least fake (top rows) and the test reals scored most fake (bottom rows), each with its fake probability."""
    folds = [fold for fold in report["folds"] if "worst_misses" in fold["conditions"][condition]]
    kinds = (("worst_misses", "missed fake"), ("worst_false_positives", "false alarm"))
    columns = max((len(fold["conditions"][condition][key]) for fold in folds for key, _ in kinds), default=1)
    figure, axes = plt.subplots(
        2 * max(len(folds), 1), columns, figsize=(1.9 * columns, 2.1 * 2 * max(len(folds), 1)), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for row, (fold, (key, label)) in enumerate((fold, kind) for fold in folds for kind in kinds):
        for column, (path, probability) in enumerate(fold["conditions"][condition][key]):
            with Image.open(path) as image:
                axes[row][column].imshow(image.convert("RGB"))
            axes[row][column].set_title(f"{fold['held_out']}\n{label} p={probability:.2f}", fontsize=7)
    # tight_layout ignores the suptitle: it gets the top 0.4 inch to itself.
    height = figure.get_figheight()
    title = f"Worst leave-one-generator-out failures (scored as {condition} copies)"
    figure.suptitle(title, fontsize=10, y=1.0 - 0.1 / height, verticalalignment="top")
    figure.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.4 / height))
    return _save(figure, out)
