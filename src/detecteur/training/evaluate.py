"""Evaluation: score a model on a run's validation/test split or on any `{real,fake}/` folder, calibrate on
validation only, and write the report (JSON + Markdown) and plots. The numbers themselves come from
`metrics`; the figures from `plots`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import nn

from detecteur.config import (
    LABEL_NAMES,
    RUN_BEST_MODEL_FILE,
    RUN_METRICS_FILE,
    CropFiles,
    Framing,
    Settings,
    TrainConfig,
)
from detecteur.inference.windows import network_region_logits
from detecteur.inputs.preprocess import InputSpec, preprocess
from detecteur.model.file import ModelMetadata
from detecteur.model.networks import load_model, pick_device, predict_logits
from detecteur.model.probabilities import FloatArray, fake_probabilities
from detecteur.training import plots
from detecteur.training.augment import recompress_jpeg
from detecteur.training.calibrate import CalibrationFit, fit_calibration
from detecteur.training.data import (
    ImageRecord,
    make_loader,
    open_image,
    read_records,
    scan_dataset,
    select_split,
)
from detecteur.training.metrics import (
    IntArray,
    compute_metrics,
    expected_calibration_error,
    has_both_classes,
    roc_auc_by_group,
)
from detecteur.training.runs import REPORT_DIR, RunDescription, read_description, write_report

# --- Evaluating a model on images: a run's val/test split, or any {real,fake}/ folder -------------------

HARDEST_ERRORS_SHOWN = 12


def _downscale_and_back(image: Image.Image) -> Image.Image:
    half = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.BICUBIC)
    return half.resize(image.size, Image.Resampling.BICUBIC)


# Degradations real uploads suffer, applied to the model's input crop before `preprocess`.
PERTURBATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg_q90": lambda image: recompress_jpeg(image, 90),
    "jpeg_q75": lambda image: recompress_jpeg(image, 75),
    "jpeg_q50": lambda image: recompress_jpeg(image, 50),
    "downscale_0.5x": _downscale_and_back,
    "gaussian_blur_sigma1": lambda image: image.filter(ImageFilter.GaussianBlur(1.0)),
}


class PerturbedInput:
    """The serving transform with a degradation applied first."""

    def __init__(self, perturbation: Callable[[Image.Image], Image.Image], spec: InputSpec) -> None:
        self.perturbation, self.spec = perturbation, spec

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return preprocess(self.perturbation(image), self.spec)


def _score_records(
    model: nn.Module,
    records: list[ImageRecord],
    spec: InputSpec,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    perturbation: Callable[[Image.Image], Image.Image] | None = None,
    framing: Framing | None = None,
) -> tuple[FloatArray, IntArray]:
    """Logits and labels of `records`. Crop files already normalised to the input (`framing` None) go through the
    serving transform; native crop files (`framing` given) through the windows the model's framing cuts, logits
    averaged (`windows.region_logits`), exactly as the service judges a face."""
    if framing is not None:
        regions = [open_image(record.path) for record in records]
        if perturbation is not None:
            regions = [perturbation(region) for region in regions]
        logits = network_region_logits(model, spec, framing, regions, device, batch_size)
        return logits.astype(np.float64), np.array([record.label for record in records], dtype=np.int64)
    transform = PerturbedInput(perturbation, spec) if perturbation else None
    loader = make_loader(records, spec, None, batch_size, num_workers, seed=0, shuffle=False, transform=transform)
    logits, labels = predict_logits(model, loader, device)
    return logits.astype(np.float64), labels


def _framing_of_files(crop_files: CropFiles, framing: Framing) -> Framing | None:
    """The framing to score crop files with: None for canonical files (they are the model's input already)."""
    return framing if crop_files == "native" else None


def _hardest_errors(
    records: list[ImageRecord], labels: IntArray, probs: FloatArray, threshold: float
) -> list[dict[str, Any]]:
    """The most confidently wrong images: what a reader of the model card should look at first."""
    wrong = np.nonzero((probs >= threshold).astype(np.int64) != labels)[0]
    ranked = wrong[np.argsort(-np.abs(probs[wrong] - threshold))][:HARDEST_ERRORS_SHOWN]
    return [
        {
            "path": str(records[i].path),
            "label": LABEL_NAMES[labels[i]],
            "fake_probability": round(float(probs[i]), 4),
        }
        for i in ranked
    ]


def _per_source(
    records: list[ImageRecord], labels: IntArray, probs: FloatArray, threshold: float
) -> dict[str, dict[str, Any]]:
    sources = np.array([r.source for r in records])
    return {
        source: compute_metrics(labels[sources == source], probs[sources == source], threshold)
        for source in sorted(set(sources.tolist()))
    }


def _draw_figures(labels: IntArray, raw: FloatArray, calibrated: FloatArray, matrix: Any, out: Path) -> list[str]:
    drawn = [plots.plot_confusion_matrix(matrix, out / "confusion_matrix.png")]
    if has_both_classes(labels):
        drawn += [
            plots.plot_roc(labels, calibrated, out / "roc.png"),
            plots.plot_precision_recall(labels, calibrated, out / "precision_recall.png"),
            plots.plot_reliability(labels, raw, calibrated, out / "reliability.png"),
        ]
    return [str(path) for path in drawn]


UTKFACE_SOURCE = "utkface-real"
UTKFACE_GENDERS = {"0": "male", "1": "female"}
UTKFACE_RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}


def _age_group(age: int) -> str:
    if age < 18:
        return "age 0-17"
    if age < 40:
        return "age 18-39"
    return "age 40-59" if age < 60 else "age 60+"


def utkface_groups(path: Path) -> list[str]:
    """Demographic groups from a UTKFace file name `age_gender_race_date…`; [] where it does not parse."""
    parts = path.name.split("_")
    if len(parts) < 4 or not parts[0].isdigit() or parts[1] not in UTKFACE_GENDERS or parts[2] not in UTKFACE_RACES:
        return []
    return [_age_group(int(parts[0])), UTKFACE_GENDERS[parts[1]], UTKFACE_RACES[parts[2]]]


def _fairness(records: list[ImageRecord], labels: IntArray, probs: FloatArray, threshold: float) -> dict[str, Any]:
    """False-positive rate on UTKFace's real faces by age group, gender and ethnicity (from file names)."""
    by_group: dict[str, list[float]] = {}
    for record, label, prob in zip(records, labels, probs, strict=True):
        if record.source == UTKFACE_SOURCE and label == 0:
            for group in utkface_groups(record.path):
                by_group.setdefault(group, []).append(float(prob))
    return {
        group: {"n": len(values), "false_positive_rate": float(np.mean(np.asarray(values) >= threshold))}
        for group, values in sorted(by_group.items())
    }


def _robustness(
    model: nn.Module,
    records: list[ImageRecord],
    spec: InputSpec,
    device: torch.device,
    config: TrainConfig,
    calibration: tuple[float, tuple[float, float], float],
    clean_auc: float | None,
    framing: Framing | None,
) -> dict[str, dict[str, Any]]:
    """Test AUC and accuracy under each of `PERTURBATIONS`, and the AUC drop from the clean test split."""
    temperature, adjustment, threshold = calibration
    table: dict[str, dict[str, Any]] = {}
    for name, perturbation in PERTURBATIONS.items():
        logits, labels = _score_records(
            model, records, spec, device, config.batch_size, config.num_workers, perturbation, framing
        )
        metrics = compute_metrics(labels, fake_probabilities(logits, temperature, adjustment), threshold)
        auc = metrics["roc_auc"]
        table[name] = {
            "roc_auc": auc,
            "accuracy": metrics["accuracy"],
            "recall": metrics["recall"],
            "false_positive_rate": metrics["false_positive_rate"],
            "auc_drop": (clean_auc - auc) if clean_auc is not None and auc is not None else None,
        }
    return table


@dataclass(frozen=True)
class RunEvaluation:
    """A run's evaluation: the report as written, and what `calibrate.save_calibrated_model` records."""

    report: dict[str, Any]
    model: nn.Module
    metadata: ModelMetadata
    calibration: CalibrationFit
    # The test, validation, calibration and per-source figures the calibrated model file carries.
    metrics: dict[str, Any]


def evaluate_run(
    run_dir: Path, out_dir: Path | None = None, device_name: str | None = None, robustness: bool = False
) -> RunEvaluation:
    """Calibrate a run's best model on its validation split and report on its test split.

    Temperature and decision threshold are fitted on validation only (`calibrate.fit_calibration`); the test split
    is touched once, for the report. Writes `report.json`/`report.md` and plots into `out_dir` (default:
    `<run>/report`); the calibrated model file is `calibrate.save_calibrated_model`'s to write.
    """
    description = read_description(run_dir)
    config = description.recipe
    split_file = Path(description.split_file)
    out_dir = out_dir or run_dir / REPORT_DIR
    device = pick_device(device_name)
    model, metadata = load_model(run_dir / RUN_BEST_MODEL_FILE, device)
    spec = metadata.input_spec
    records = read_records(split_file)
    val_records, test_records = select_split(records, "val"), select_split(records, "test")
    framing = _framing_of_files(config.crop_files, metadata.framing)
    val_logits, val_labels = _score_records(
        model, val_records, spec, device, config.batch_size, config.num_workers, framing=framing
    )
    test_logits, test_labels = _score_records(
        model, test_records, spec, device, config.batch_size, config.num_workers, framing=framing
    )

    val_sources = [record.source for record in val_records]
    fit = fit_calibration(val_logits, val_labels, config.class_weights, val_sources, config.max_real_source_fpr)
    adjustment, temperature, threshold = fit.logit_adjustment, fit.temperature, fit.threshold
    val_probs = fake_probabilities(val_logits, temperature, adjustment)
    test_raw = fake_probabilities(test_logits)
    test_probs = fake_probabilities(test_logits, temperature, adjustment)
    metrics = compute_metrics(test_labels, test_probs, threshold)
    validation = compute_metrics(val_labels, val_probs, threshold)
    # As training logs it per epoch: the weakest source is what the overall AUC hides.
    validation["roc_auc_by_source"] = roc_auc_by_group(val_sources, val_labels, val_probs)
    calibration = {
        "logit_adjustment": list(adjustment),
        "temperature": temperature,
        # The threshold rule: Youden's J, raised so no real source's validation FPR exceeds this (None: not raised).
        "max_real_source_fpr": config.max_real_source_fpr,
        "ece_before": expected_calibration_error(test_labels, test_raw),
        "ece_after": expected_calibration_error(test_labels, test_probs),
        "val_ece_before": expected_calibration_error(val_labels, fake_probabilities(val_logits)),
        "val_ece_after": expected_calibration_error(val_labels, val_probs),
    }
    per_source = _per_source(test_records, test_labels, test_probs, threshold)
    figures = _draw_figures(test_labels, test_raw, test_probs, metrics["confusion_matrix"], out_dir)
    figures += _training_curves(run_dir, description, out_dir)
    hardest_errors = _hardest_errors(test_records, test_labels, test_probs, threshold)
    if hardest_errors:
        title = "Most confidently wrong test images"
        figures.append(str(plots.plot_examples(hardest_errors, out_dir / "hardest_errors.png", title=title)))
    report: dict[str, Any] = {
        "dataset": f"{split_file} (test split)",
        "model": metadata.version,
        **metrics,
        "validation": validation,
        "calibration": calibration,
        "per_source": per_source,
        "hardest_errors": hardest_errors,
        "figures": figures,
        "report_dir": str(out_dir),
    }
    fairness = _fairness(test_records, test_labels, test_probs, threshold)
    if fairness:
        report["fairness_utkface"] = fairness
    if robustness:
        report["robustness"] = _robustness(
            model, test_records, spec, device, config, (temperature, adjustment, threshold), metrics["roc_auc"], framing
        )
    model_metrics = {"test": metrics, "validation": validation, "calibration": calibration, "per_source": per_source}
    return RunEvaluation(write_report(report, out_dir), model, metadata, fit, model_metrics)


def _training_curves(run_dir: Path, description: RunDescription, out_dir: Path) -> list[str]:
    """The run's training curves; an ensemble trained nothing itself, so its members' curves."""
    if not description.is_ensemble:
        return [str(plots.plot_training_curves(run_dir / RUN_METRICS_FILE, out_dir / "training_curves.png"))]
    return [
        str(plots.plot_training_curves(member / RUN_METRICS_FILE, out_dir / f"training_curves_{member.name}.png"))
        for member in description.member_runs
    ]


def evaluate_folder(
    model_path: Path,
    data_dir: Path,
    out_dir: Path | None = None,
    device_name: str | None = None,
    crop_files: CropFiles = "canonical",
) -> dict[str, Any]:
    """Score every image under `data_dir/{real,fake}/` with a model file as shipped (its own temperature
    and threshold) and report; `out_dir` defaults to `reports/<model>/<folder>`. `crop_files` says whether the
    folder holds normalised crops or native ones (`detecteur data faces --native`)."""
    device = pick_device(device_name)
    model, metadata = load_model(model_path, device)
    records = scan_dataset(data_dir)
    out_dir = out_dir or Path("reports") / model_path.stem / data_dir.name
    framing = _framing_of_files(crop_files, metadata.framing)
    logits, labels = _score_records(
        model, records, metadata.input_spec, device, Settings().batch_size, 2, framing=framing
    )
    raw = fake_probabilities(logits)
    probs = fake_probabilities(logits, metadata.temperature, metadata.logit_adjustment)
    metrics = compute_metrics(labels, probs, metadata.threshold)
    report: dict[str, Any] = {
        "dataset": str(data_dir),
        "model": metadata.version,
        **metrics,
        "hardest_errors": _hardest_errors(records, labels, probs, metadata.threshold),
        "figures": _draw_figures(labels, raw, probs, metrics["confusion_matrix"], out_dir),
        "report_dir": str(out_dir),
    }
    return write_report(report, out_dir)
