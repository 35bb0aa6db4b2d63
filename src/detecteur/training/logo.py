"""Leave-one-generator-out (LOGO): how a recipe does on generators it never saw, the figure recipes are chosen by.

For each fake source in `recipe.logo.held_out`, a short run (the recipe on the fold's fixed budget) trains on every
other source, its held-out generator's fakes left out of training and validation (the source's reals stay); then the
held-out generator's fakes are scored against the reals of the test split, which no fold trains on. Two conditions: the
faces as stored, and "web" — every face shrunk to a thumbnail size and re-encoded at JPEG q75, reals and fakes alike, as
typical web images are. Sources differ in sharpness and size, so each fold's AUC is computed with the reals re-weighted
to match the held-out fakes on both (`matched_weights`), with the one-statistic AUCs beside it: a fold whose sharpness
or size AUC stays far from 0.5 says more about the data than about the model.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from sklearn.metrics import roc_auc_score

from detecteur.config import AUTHENTIC, RUN_BEST_MODEL_FILE, SYNTHETIC, TrainConfig
from detecteur.files import atomic_write_text, file_sha256
from detecteur.inference.windows import network_region_logits
from detecteur.model.networks import ModelMetadata, load_model
from detecteur.model.probabilities import fake_probabilities
from detecteur.training.augment import recompress_jpeg
from detecteur.training.data import (
    DataError,
    ImageRecord,
    open_image,
    read_records,
    scan_dataset,
    select_split,
    without_sources,
)
from detecteur.training.runs import best_epoch, read_description, read_epochs, training_seconds
from detecteur.training.sampling import sharpness
from detecteur.training.stages import recipe_changes

console = Console(stderr=True)

MAX_FOLD_FAKES, MAX_FOLD_REALS = 200, 300  # the most images of each class a fold scores (sampled, fixed seed)
TARGET_VALIDATION_FPR = 0.03  # the false-positive rate a fold's threshold is set to on its validation reals
WEB_JPEG_QUALITY = 75
WEB_SIDE_RANGE = (150, 230)  # a face crop in a 200–256 px web image
CONDITIONS = ("stored", "web")
# Images per fold and kind in the gallery of failures (`plots.plot_logo_gallery`).
GALLERY_PER_FOLD = 4
# Cells per statistic (sharpness, crop side) in which the reals are matched to the held-out fakes.
MATCHING_BINS = (5, 3)


def web_version(image: Image.Image, key: str) -> Image.Image:
    """`image` as a typical web copy: shrunk (never enlarged) to a side drawn from `WEB_SIDE_RANGE` by a seed
    taken from `key`, so every run scores the same copy, then re-encoded at JPEG q75."""
    rng = random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
    side = rng.randint(*WEB_SIDE_RANGE)
    if min(image.size) > side:
        scale = side / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    return recompress_jpeg(image, WEB_JPEG_QUALITY)


def score_regions(model: torch.nn.Module, metadata: ModelMetadata, regions: Sequence[Image.Image]) -> np.ndarray:
    """Uncalibrated fake probabilities of native face crops, windows averaged as the service does."""
    return fake_probabilities(network_region_logits(model, metadata.input_spec, metadata.framing, regions))


def _sample(records: Sequence[ImageRecord], limit: int, seed: int = 0) -> list[ImageRecord]:
    chosen = list(records) if len(records) <= limit else random.Random(seed).sample(list(records), limit)
    return sorted(chosen, key=lambda r: str(r.path))


def _auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    if len(set(labels.tolist())) < 2:
        return None
    auc = float(roc_auc_score(labels, scores, sample_weight=weights))
    return auc


@dataclass
class ConditionResult:
    auc: float | None  # reals re-weighted to match the fakes' sharpness and size (`matched_weights`)
    auc_unweighted: float | None
    sharpness_auc: float | None  # sharpness alone as the score, unweighted
    sharpness_auc_weighted: float | None
    size_auc_weighted: float | None  # the scored crop's side alone as the score
    recall: float  # of the held-out fakes at the fold's threshold
    fpr_by_real_source: dict[str, float]
    # The held-out fakes scored least fake and the reals scored most fake: (file, fake probability), worst first.
    worst_misses: list[tuple[str, float]]
    worst_false_positives: list[tuple[str, float]]


def matched_weights(labels: np.ndarray, statistics: Sequence[np.ndarray], bins: Sequence[int]) -> np.ndarray:
    """Weights under which the reals look like the fakes on every one of `statistics`: the statistics are cut into
    cells at the fakes' quantiles (`bins` per statistic; the outermost cells open-ended), each real weighs (fakes in
    its cell / reals in its cell), and reals in a cell without fakes weigh nothing. Fakes weigh 1."""
    fakes = labels == SYNTHETIC
    cell = np.zeros(len(labels), dtype=np.int64)
    for values, count in zip(statistics, bins, strict=True):
        edges = np.quantile(values[fakes], np.linspace(0, 1, count + 1)[1:-1]) if fakes.any() else np.array([])
        cell = cell * count + np.searchsorted(edges, values, side="right")
    weights = np.where(fakes, 1.0, 0.0)
    for value in np.unique(cell):
        reals_here = ~fakes & (cell == value)
        if reals_here.any():
            weights[reals_here] = np.count_nonzero(fakes & (cell == value)) / np.count_nonzero(reals_here)
    return weights


def evaluate_condition(
    probabilities: np.ndarray, records: Sequence[ImageRecord], regions: Sequence[Image.Image], threshold: float
) -> ConditionResult:
    labels = np.array([r.label for r in records])
    sharp = np.array([sharpness(region) for region in regions])
    sizes = np.array([min(region.size) for region in regions], dtype=np.float64)
    weights = matched_weights(labels, [sharp, sizes], MATCHING_BINS)
    fakes, reals = labels == SYNTHETIC, labels == AUTHENTIC
    sources = np.array([r.source for r in records])
    fpr = {
        source: float((probabilities[reals & (sources == source)] >= threshold).mean())
        for source in sorted({r.source for r in records if r.label == AUTHENTIC})
    }
    return ConditionResult(
        auc=_auc(labels, probabilities, weights),
        auc_unweighted=_auc(labels, probabilities),
        sharpness_auc=_auc(labels, sharp),
        sharpness_auc_weighted=_auc(labels, sharp, weights),
        size_auc_weighted=_auc(labels, sizes, weights),
        recall=float((probabilities[fakes] >= threshold).mean()) if fakes.any() else float("nan"),
        fpr_by_real_source=fpr,
        worst_misses=_extremes(records, probabilities, fakes, lowest=True),
        worst_false_positives=_extremes(records, probabilities, reals, lowest=False),
    )


def _extremes(
    records: Sequence[ImageRecord], probabilities: np.ndarray, chosen: np.ndarray, lowest: bool
) -> list[tuple[str, float]]:
    indices = np.nonzero(chosen)[0]
    order = indices[np.argsort(probabilities[indices])]
    picked = order[:GALLERY_PER_FOLD] if lowest else order[::-1][:GALLERY_PER_FOLD]
    return [(str(records[i].path), round(float(probabilities[i]), 4)) for i in picked]


def score_records(
    model: torch.nn.Module, metadata: ModelMetadata, records: Sequence[ImageRecord], threshold: float
) -> dict[str, ConditionResult]:
    """The model's results on `records` (fakes and reals) in each condition."""
    stored = [open_image(r.path) for r in records]
    results = {}
    for condition in CONDITIONS:
        regions = (
            stored
            if condition == "stored"
            else [web_version(im, str(r.path)) for im, r in zip(stored, records, strict=True)]
        )
        probabilities = score_regions(model, metadata, regions)
        results[condition] = evaluate_condition(probabilities, records, regions, threshold)
    return results


def fold_validation_reals(records: Sequence[ImageRecord], excluded: Sequence[str]) -> list[ImageRecord]:
    """The validation reals a fold's threshold is set on: those of sources its model could have seen."""
    reals = [r for r in without_sources(select_split(records, "val"), excluded) if r.label == AUTHENTIC]
    return _sample(reals, MAX_FOLD_REALS)


def fold_threshold(model: torch.nn.Module, metadata: ModelMetadata, validation_reals: Sequence[ImageRecord]) -> float:
    """The probability above which `TARGET_VALIDATION_FPR` of the fold's validation reals lie."""
    probabilities = score_regions(model, metadata, [open_image(r.path) for r in validation_reals])
    return float(np.quantile(probabilities, 1 - TARGET_VALIDATION_FPR))


def recipe_leaves_out(recipe: TrainConfig, held_out: str) -> bool:
    """Whether the recipe itself never trains on the generator's fakes (one trained on fakes made from reals only)."""
    return f"{held_out}/fake" in recipe.exclude_sources


def fold_config(recipe: TrainConfig, held_out: str) -> TrainConfig:
    """The recipe on the fold's budget, with the `held_out` generator's fakes left out of training and validation.

    Only the fakes: a source's reals (FFHQ beside StyleGAN, LFW beside the FaceSwap swaps) are camera photos, not
    the generator, and a fold that never sees them meets their look for the first time among its test reals.
    A recipe that leaves the generator out already (one trained on fakes made from reals only) is its own fold.
    """
    budget = recipe.logo
    excluded = list(recipe.exclude_sources)
    if not recipe_leaves_out(recipe, held_out):
        excluded.append(f"{held_out}/fake")
    if budget.full_recipe:
        return recipe.model_copy(update={"exclude_sources": excluded})
    return recipe.model_copy(
        update={
            "exclude_sources": excluded,
            "epochs": budget.epochs,
            "max_train_images": budget.max_train_images,
            "max_eval_images": budget.max_eval_images,
            "early_stopping_patience": budget.epochs + 1,
        }
    )


def _fold_finished(run_dir: Path, config: TrainConfig, split_file: Path) -> bool:
    """Whether the fold's run is complete; a run folder left by a fold that excluded other sources (an older
    protocol), trained another recipe (another seed, another input) or on another split is refused rather than
    resumed or reused."""
    if (run_dir / "config.json").exists():
        description = read_description(run_dir)
        recorded = description.config.get("exclude_sources")
        if recorded != config.exclude_sources:
            raise DataError(
                f"{run_dir} was trained without {recorded}, this fold leaves out {config.exclude_sources}: "
                "move that folder away to rerun the fold"
            )
        changed = recipe_changes(description.config, config)
        if changed:
            raise DataError(
                f"{run_dir} was trained with other {', '.join(changed)} than this fold's recipe: "
                "move that folder away or give the sweep its own --logo-runs"
            )
        if description.split_sha256 != file_sha256(split_file):
            raise DataError(
                f"{run_dir} was trained on {description.split_file}, not on {split_file} as it is now: "
                "move that folder away to rerun the fold"
            )
    # A fine-tuned run writes one metrics line per epoch; a probe its one line after its model file.
    return len(read_epochs(run_dir)) >= (1 if config.method == "frozen_probe" else config.epochs)


@dataclass(frozen=True)
class FoldReference:
    """What a fold model's figures share whichever generator is held out: its threshold, set on the validation
    reals it could have seen, and its cross-dataset row. A recipe trained on no generator computes it once."""

    threshold: float
    cross_dataset: dict[str, Any] | None


def run_fold(
    recipe: TrainConfig,
    held_out: str,
    split_file: Path,
    run_dir: Path,
    cross_dataset: Path | None,
    references: dict[Path, FoldReference],
) -> dict[str, Any]:
    """Train (or resume) one fold and score it; `references` (by fold folder) gains this fold's if it lacks it."""
    from detecteur.training.train import train

    config = fold_config(recipe, held_out)
    if not _fold_finished(run_dir, config, split_file):
        train(config, split_file, run_dir, resume=(run_dir / "checkpoint.pt").exists())
    model, metadata = load_model(run_dir / RUN_BEST_MODEL_FILE)
    if run_dir not in references:
        references[run_dir] = fold_reference(model, metadata, split_file, config.exclude_sources, cross_dataset)
    result = score_fold(model, metadata, held_out, split_file, references[run_dir])
    epochs = read_epochs(run_dir)
    # The fold's folder and training time, for the ledger of every sweep (scripts/logo_ledger.py): folds that
    # share one model (`SHARED_FOLD`) name the same folder, whose training counts once.
    return {
        **result,
        "val_auc": best_epoch(epochs).val_auc,
        "run": run_dir.name,
        "train_seconds": round(training_seconds(epochs), 1),
    }


def fold_reference(
    model: torch.nn.Module,
    metadata: ModelMetadata,
    split_file: Path,
    excluded: Sequence[str],
    cross_dataset: Path | None,
) -> FoldReference:
    """A fold model's threshold from the validation reals it could have seen (`excluded` left out), and its
    figures on the cross-dataset folder if one is given."""
    threshold = fold_threshold(model, metadata, fold_validation_reals(read_records(split_file), excluded))
    if cross_dataset is None:
        return FoldReference(threshold, None)
    cross = _sample(scan_dataset(cross_dataset), MAX_FOLD_FAKES + MAX_FOLD_REALS)
    conditions = {k: asdict(v) for k, v in score_records(model, metadata, cross, threshold).items()}
    return FoldReference(threshold, {"name": cross_dataset.name, "conditions": conditions})


def score_fold(
    model: torch.nn.Module,
    metadata: ModelMetadata,
    held_out: str,
    split_file: Path,
    reference: FoldReference,
) -> dict[str, Any]:
    """A fold model's figures: the held-out generator's fakes against the test reals in each condition, at the
    reference's threshold, and the reference's cross-dataset row."""
    records = read_records(split_file)
    test_reals = _sample([r for r in select_split(records, "test") if r.label == AUTHENTIC], MAX_FOLD_REALS)
    held_out_fakes = _sample([r for r in records if r.source == held_out and r.label == SYNTHETIC], MAX_FOLD_FAKES)
    scored = score_records(model, metadata, held_out_fakes + test_reals, reference.threshold)
    result: dict[str, Any] = {
        "held_out": held_out,
        "threshold": reference.threshold,
        "fakes": len(held_out_fakes),
        "reals": len(test_reals),
        "conditions": {k: asdict(v) for k, v in scored.items()},
    }
    if reference.cross_dataset is not None:
        result["cross_dataset"] = reference.cross_dataset
    return result


def _floor(val_auc: float | None) -> str:
    """A fold's in-distribution validation AUC; "—" for a fold model that has none (an ensemble of fold models)."""
    return "—" if val_auc is None else f"{val_auc:.4f}"


def summarise_folds(folds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst fold AUC per condition: the figures recipes are chosen by."""
    summary: dict[str, Any] = {}
    for condition in CONDITIONS:
        aucs = [fold["conditions"][condition]["auc"] for fold in folds]
        recalls = [fold["conditions"][condition]["recall"] for fold in folds]
        summary[condition] = {
            "mean_auc": float(np.mean(aucs)),
            "worst_auc": float(np.min(aucs)),
            "worst_fold": folds[int(np.argmin(aucs))]["held_out"],
            "mean_recall": float(np.mean(recalls)),
            "worst_recall": float(np.min(recalls)),
        }
        cross = [fold["cross_dataset"]["conditions"][condition]["auc"] for fold in folds if "cross_dataset" in fold]
        if cross:
            summary[condition]["cross_dataset_mean_auc"] = float(np.mean(cross))
    return summary


def logo_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Leave-one-generator-out: {report['recipe']}", ""]
    for condition in CONDITIONS:
        s = report["summary"][condition]
        lines += [
            f"## {condition}: mean AUC {s['mean_auc']:.4f}, worst {s['worst_auc']:.4f} ({s['worst_fold']})",
            "",
            "| held-out generator | AUC (sharpness-matched) | AUC (plain) | sharpness AUC | size AUC | recall | "
            "max real-source FPR | val AUC (floor) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for fold in report["folds"]:
            c = fold["conditions"][condition]
            lines.append(
                f"| {fold['held_out']} | {c['auc']:.4f} | {c['auc_unweighted']:.4f} | {c['sharpness_auc']:.3f} → "
                f"{c['sharpness_auc_weighted']:.3f} | {c['size_auc_weighted']:.3f} | {c['recall']:.3f} | "
                f"{max(c['fpr_by_real_source'].values()):.3f} | {_floor(fold.get('val_auc'))} |"
            )
        crosses = [f for f in report["folds"] if "cross_dataset" in f]
        if crosses:
            name = crosses[0]["cross_dataset"]["name"]
            aucs = ", ".join(f"{f['cross_dataset']['conditions'][condition]['auc']:.3f}" for f in crosses)
            lines += ["", f"Cross-dataset {name} (never trained on), AUC per fold model: {aucs}"]
        lines.append("")
    return "\n".join(lines)


# The fold folder of generators the recipe never trains on: one model, scored on each of them.
SHARED_FOLD = "recipe-holds-all-out"


def fold_run_dir(recipe: TrainConfig, held_out: str, runs_dir: Path) -> Path:
    return runs_dir / (SHARED_FOLD if recipe_leaves_out(recipe, held_out) else held_out)


def write_logo_report(out_dir: Path, about: dict[str, Any], folds: list[dict[str, Any]]) -> dict[str, Any]:
    """A sweep's results — what it measured (`about`: recipe, split …), its folds and their summary — as
    `logo.json` and `logo.md` in `out_dir` (read by `scripts/logo_compare.py`, the card); returns the report."""
    report = about | {"folds": folds, "summary": summarise_folds(folds)}
    atomic_write_text(out_dir / "logo.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "logo.md", logo_markdown(report))
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per condition: the mean and worst fold AUC, and which fold is the worst."""
    return [
        f"{condition}: mean AUC {figures['mean_auc']:.4f}, worst {figures['worst_auc']:.4f} ({figures['worst_fold']})"
        for condition, figures in report["summary"].items()
    ]


def run_logo(
    recipe: TrainConfig,
    recipe_name: str,
    split_file: Path,
    runs_dir: Path,
    out_dir: Path,
    cross_dataset: Path | None = None,
) -> dict[str, Any]:
    """Every fold of `recipe`, then `logo.json` and `logo.md` in `out_dir` (rewritten after each fold, so an
    interrupted sweep keeps what it measured and resumes where it stopped)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    folds: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    references: dict[Path, FoldReference] = {}
    for held_out in recipe.logo.held_out:
        console.print(f"[bold]LOGO fold: {held_out} held out[/bold]")
        run_dir = fold_run_dir(recipe, held_out, runs_dir)
        folds.append(run_fold(recipe, held_out, split_file, run_dir, cross_dataset, references))
        about = {
            "recipe": recipe_name,
            "seed": recipe.seed,
            "split_file": str(split_file),
            "budget": recipe.logo.model_dump(mode="json"),
        }
        report = write_logo_report(out_dir, about, folds)
    return report
