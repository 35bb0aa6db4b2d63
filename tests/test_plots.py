"""Each plot writes one readable PNG of a plausible size and leaves no figure open."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from detecteur.training.plots import (
    plot_confusion_matrix,
    plot_precision_recall,
    plot_reliability,
    plot_roc,
    plot_training_curves,
)

EPOCHS = [
    {
        "epoch": 1,
        "train_loss": 0.6,
        "train_accuracy": 0.7,
        "val_loss": 0.5,
        "val_auc": 0.8,
        "val_accuracy": 0.75,
        "lr": 1e-4,
        "seconds": 12.3,
        "images_per_second": 50.1,
    },
    {
        "epoch": 2,
        "train_loss": 0.4,
        "train_accuracy": 0.8,
        "val_loss": 0.45,
        "val_auc": 0.86,
        "val_accuracy": 0.8,
        "lr": 5e-5,
        "seconds": 11.9,
        "images_per_second": 51.0,
    },
]


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=400)
    fake_probs = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0.0, 1.0)
    return labels, fake_probs


def assert_is_png(path: Path, min_width: int = 300, min_height: int = 300) -> None:
    assert path.stat().st_size > 5_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert min_width <= width <= 3_000
    assert min_height <= height <= 3_000
    assert plt.get_fignums() == [], "the figure was left open"


def write_jsonl(path: Path, records: list[dict[str, float]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_training_curves_draw_every_recorded_metric(tmp_path: Path) -> None:
    metrics = write_jsonl(tmp_path / "metrics.jsonl", EPOCHS)
    out = plot_training_curves(metrics, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    assert_is_png(out, min_width=800)


def test_training_curves_skip_metrics_a_run_did_not_record(tmp_path: Path) -> None:
    records = [{"epoch": record["epoch"], "train_loss": record["train_loss"]} for record in EPOCHS]
    metrics = write_jsonl(tmp_path / "metrics.jsonl", records)
    assert_is_png(plot_training_curves(metrics, tmp_path / "curves.png"), min_width=800)


def test_training_curves_add_a_panel_per_source_when_the_run_logged_them(tmp_path: Path) -> None:
    by_source = [{"lfw-faceswap": 0.99, "stylegan-ffhq": 0.88}, {"lfw-faceswap": 0.995, "stylegan-ffhq": 0.9}]
    records = [record | {"val_auc_by_source": auc} for record, auc in zip(EPOCHS, by_source, strict=True)]
    with_sources = plot_training_curves(write_jsonl(tmp_path / "a.jsonl", records), tmp_path / "a.png")
    without = plot_training_curves(write_jsonl(tmp_path / "b.jsonl", EPOCHS), tmp_path / "b.png")
    with Image.open(with_sources) as three_panels, Image.open(without) as two_panels:
        assert three_panels.width >= 1.4 * two_panels.width


def test_training_curves_raise_on_a_file_without_epochs(tmp_path: Path) -> None:
    empty = tmp_path / "metrics.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no epochs"):
        plot_training_curves(empty, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_roc_plot_is_a_png(tmp_path: Path, scored: tuple[np.ndarray, np.ndarray]) -> None:
    out = plot_roc(*scored, tmp_path / "plots" / "roc.png", title="ROC — validation")
    assert out == tmp_path / "plots" / "roc.png"
    assert_is_png(out)


def test_roc_plot_needs_both_classes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        plot_roc(np.array([1, 1]), np.array([0.2, 0.9]), tmp_path / "roc.png")


def test_precision_recall_plot_is_a_png(tmp_path: Path, scored: tuple[np.ndarray, np.ndarray]) -> None:
    assert_is_png(plot_precision_recall(*scored, tmp_path / "pr.png"))


def test_reliability_plot_is_a_png(tmp_path: Path, scored: tuple[np.ndarray, np.ndarray]) -> None:
    labels, fake_probs = scored
    overconfident = np.where(fake_probs >= 0.5, 1.0 - (1.0 - fake_probs) / 4, fake_probs / 4)
    assert_is_png(plot_reliability(labels, overconfident, fake_probs, tmp_path / "reliability.png"))


def test_confusion_matrix_plot_is_a_png(tmp_path: Path) -> None:
    assert_is_png(plot_confusion_matrix([[50, 3], [7, 40]], tmp_path / "confusion.png"))


def test_confusion_matrix_plot_rejects_a_matrix_that_does_not_match_the_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix([[1, 2, 3]], tmp_path / "confusion.png")


def test_examples_sheet_shows_every_image_with_its_label(tmp_path: Path) -> None:
    from PIL import Image

    from detecteur.training.plots import plot_examples

    examples = []
    for index in range(7):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (32, 32), (index * 30, 0, 0)).save(path)
        examples.append({"path": str(path), "label": "authentic", "fake_probability": 0.9})
    out = plot_examples(examples, tmp_path / "sheet.png", columns=3, title="errors")
    with Image.open(out) as sheet:
        assert sheet.size[0] > 300 and sheet.size[1] > 3 * 150  # three rows of three
