"""Training by linear probe (`method = "frozen_probe"`): a frozen ImageNet backbone, a fitted logistic regression.

Why: on 2 CPU cores a fine-tuned network sees ~1 600 draws per leave-one-generator-out fold, and what it learns in
that time is the training generators. A frozen backbone cannot memorise them; its stage statistics
(`model.StageStatisticsProbe`) are computed once per augmented view of each training image — cached, so every
fold and every rerun reuses them — and each fit is a logistic regression of a few seconds on all the data.

The run folder is the one `train` writes (`config.json`, one line of `metrics.jsonl`, `best_model.safetensors`), so
evaluation, calibration, the LOGO sweep and shipping treat a probe like any other run.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from detecteur.config import AUTHENTIC, RUN_BEST_MODEL_FILE, SYNTHETIC, TrainConfig
from detecteur.files import atomic_path, file_sha256
from detecteur.inputs.preprocess import model_windows, preprocess
from detecteur.model.networks import (
    StageStatisticsProbe,
    autocast_context,
    input_spec_for,
    mixed_precision_pays,
    save_model,
)
from detecteur.training.augment import TrainingTransform
from detecteur.training.data import (
    ImageRecord,
    open_image,
    read_records,
    select_split,
    stratified_subset,
    summarise,
    without_sources,
)
from detecteur.training.metrics import roc_auc_by_group
from detecteur.training.runs import EpochRecord, describe_run, new_model_metadata, write_description, write_epochs
from detecteur.training.sampling import recipe_sampling_weights
from detecteur.training.synthesis import self_blend

console = Console(stderr=True)

SELF_BLEND_VIEW = "self_blend"
SERVED_VIEW = "served"
# Windows per forward batch while extracting features.
EXTRACTION_BATCH = 64
# Bumped when what a cached feature means changes (the statistics, the views), so old caches are not reused.
FEATURE_VERSION = 1


class FeatureCache:
    """Feature vectors by key (file, size, mtime, view) for one backbone and augmentation setting, kept in
    `<cache_dir>/<digest>.npz` and written atomically."""

    def __init__(self, cache_dir: Path, settings: dict[str, Any]) -> None:
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.path = cache_dir / f"{settings['arch']}-{digest}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path) as stored:
                self.vectors = dict(zip(stored["keys"].tolist(), stored["values"], strict=True))

    def save(self) -> None:
        if not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as temporary, temporary.open("wb") as handle:
            np.savez(handle, keys=np.array(list(self.vectors)), values=np.stack(list(self.vectors.values())))


def view_key(record: ImageRecord, view: str) -> str:
    stat = record.path.stat()
    return f"{record.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{view}"


def _seeded(key: str, seed: int) -> random.Random:
    """Seeds Python's and torch's generators (the augmentation draws from both) from `key`, and returns a
    generator of its own for the self-blend."""
    value = zlib.crc32(f"{seed}|{key}".encode())
    random.seed(value)
    torch.manual_seed(value)
    return random.Random(value)


class ViewExtractor:
    """Computes the stage statistics of views of records, in batches, through the cache."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.spec = input_spec_for(config.arch, 3, config.input_size)
        self.network = StageStatisticsProbe(config.arch, pretrained=True).eval()
        self.network = self.network.to(memory_format=torch.channels_last)
        self.bf16 = mixed_precision_pays(torch.device("cpu"))
        self.augment = TrainingTransform(self.spec, config.augment, native=True)
        self.cache = FeatureCache(
            config.feature_cache,
            {
                "arch": config.arch,
                "input_size": config.input_size,
                "augment": config.augment.model_dump(mode="json"),
                "seed": config.seed,
                "version": FEATURE_VERSION,
                "bf16": self.bf16,
            },
        )

    def windows(self, record: ImageRecord, view: str) -> list[torch.Tensor]:
        image = open_image(record.path)
        if view == SERVED_VIEW:
            return [preprocess(window, self.spec) for window in model_windows(image, self.spec.input_size)]
        rng = _seeded(view_key(record, view), self.config.seed)
        if view == SELF_BLEND_VIEW:
            image = self_blend(image, rng)
        return [self.augment(image)]

    def features(self, requests: Sequence[tuple[ImageRecord, str]], description: str) -> np.ndarray:
        """One row per (record, view): the mean statistics over the view's windows."""
        keys = [view_key(record, view) for record, view in requests]
        missing = [i for i, key in enumerate(keys) if key not in self.cache.vectors]
        pending: list[tuple[str, list[torch.Tensor]]] = []
        for count, index in enumerate(track(missing, description=description, console=console), start=1):
            record, view = requests[index]
            pending.append((keys[index], self.windows(record, view)))
            if sum(len(w) for _, w in pending) >= EXTRACTION_BATCH or count == len(missing):
                self._compute(pending)
                pending = []
            if count % 2000 == 0:
                self.cache.save()
        if missing:
            self.cache.save()
        return np.stack([self.cache.vectors[key] for key in keys])

    def _compute(self, pending: list[tuple[str, list[torch.Tensor]]]) -> None:
        batch = torch.stack([w for _, windows in pending for w in windows]).contiguous(
            memory_format=torch.channels_last
        )
        with torch.inference_mode(), autocast_context(torch.device("cpu"), self.bf16):
            rows = self.network.features(batch).float().numpy()
        start = 0
        for key, windows in pending:
            self.cache.vectors[key] = rows[start : start + len(windows)].mean(axis=0)
            start += len(windows)


def training_requests(records: Sequence[ImageRecord], config: TrainConfig) -> list[tuple[ImageRecord, str, int]]:
    """(record, view, label) for every training view: `probe_views` augmented views of each image, and a
    self-blended fake of each real with probability `self_blend_probability` (decided per file, reproducibly)."""
    requests = [(r, f"augmented-{k}", r.label) for r in records for k in range(config.probe_views)]
    for r in records:
        draw = zlib.crc32(f"{config.seed}|self-blend|{r.path}".encode()) / 2**32
        if r.label == AUTHENTIC and draw < config.self_blend_probability:
            requests.append((r, SELF_BLEND_VIEW, SYNTHETIC))
    return requests


def view_weights(
    requests: Sequence[tuple[ImageRecord, str, int]], record_weights: dict[Path, float], config: TrainConfig
) -> np.ndarray:
    """Sample weights of the views: each record's sampling weight shared among its views; the self-blended
    fakes weigh as one more (source, class) group; fakes × the recipe's class weight ratio."""
    weights = np.array(
        [record_weights[r.path] / config.probe_views if v != SELF_BLEND_VIEW else 0.0 for r, v, _ in requests]
    )
    blends = np.array([v == SELF_BLEND_VIEW for _, v, _ in requests])
    if blends.any():
        groups = len({(r.source, r.label) for r, v, _ in requests if v != SELF_BLEND_VIEW})
        weights[blends] = weights.sum() / groups / np.count_nonzero(blends)
    labels = np.array([label for _, _, label in requests])
    weights[labels == SYNTHETIC] *= config.class_weights[SYNTHETIC] / config.class_weights[AUTHENTIC]
    normalised: np.ndarray = weights * len(weights) / weights.sum()
    return normalised


def _record_weights(records: Sequence[ImageRecord], config: TrainConfig) -> tuple[dict[Path, float], dict[str, Any]]:
    if not (config.balance_sources or config.balance_sharpness):
        return {r.path: 1.0 for r in records}, {}
    weights, proof = recipe_sampling_weights(records, config)
    return dict(zip((r.path for r in records), weights, strict=True)), proof


def fit_logistic(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, c: float) -> tuple[np.ndarray, ...]:
    """(mean, scale, weights, bias) of an L2 logistic regression on standardised features."""
    mean = np.average(features, axis=0, weights=weights)
    scale = np.sqrt(np.average((features - mean) ** 2, axis=0, weights=weights)) + 1e-6
    regression = LogisticRegression(C=c, max_iter=5000)
    regression.fit((features - mean) / scale, labels, sample_weight=weights)
    return mean, scale, regression.coef_[0], regression.intercept_


def fit_probe(config: TrainConfig, split_file: Path, run_dir: Path) -> Path:
    """Fit the recipe's probe on the split's training views; validate; write the run folder."""
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    records = without_sources(read_records(split_file), config.exclude_sources)
    train_records = stratified_subset(select_split(records, "train"), config.max_train_images, config.seed)
    val_records = stratified_subset(select_split(records, "val"), config.max_eval_images, config.seed)
    data_summary: dict[str, Any] = summarise(train_records + val_records)
    record_weights, data_summary["sharpness_shortcut"] = _record_weights(train_records, config)
    extractor = ViewExtractor(config)
    requests = training_requests(train_records, config)
    console.print(
        f"frozen probe on {config.arch}: {len(train_records)} training images → {len(requests)} views, "
        f"validating on {len(val_records)}, bf16 features {extractor.bf16}"
    )
    features = extractor.features([(r, v) for r, v, _ in requests], "training views")
    labels = np.array([label for _, _, label in requests])
    weights = view_weights(requests, record_weights, config)
    mean, scale, coefficients, bias = fit_logistic(features, labels, weights, config.probe_c)
    network = extractor.network.to(memory_format=torch.contiguous_format)
    network.set_probe(mean, scale, coefficients, float(bias[0]))

    def probabilities(rows: np.ndarray) -> np.ndarray:
        score = ((rows - mean) / scale) @ coefficients + bias[0]
        return np.asarray(1.0 / (1.0 + np.exp(-score)))

    val_features = extractor.features([(r, SERVED_VIEW) for r in val_records], "validation faces")
    val_labels = np.array([r.label for r in val_records])
    val_probabilities = probabilities(val_features)
    train_probabilities = probabilities(features)
    val_auc = float(roc_auc_score(val_labels, val_probabilities))
    seconds = time.perf_counter() - started
    epoch_record = EpochRecord(
        epoch=1,
        train_loss=float(log_loss(labels, train_probabilities, sample_weight=weights)),
        train_accuracy=float(((train_probabilities >= 0.5) == labels).mean()),
        val_loss=float(log_loss(val_labels, val_probabilities, labels=[AUTHENTIC, SYNTHETIC])),
        val_auc=val_auc,
        val_accuracy=float(((val_probabilities >= 0.5) == val_labels).mean()),
        val_auc_by_source=roc_auc_by_group([r.source for r in val_records], val_labels, val_probabilities),
        lr=0.0,
        seconds=seconds,
        images_per_second=len(requests) / seconds,
    )
    description = describe_run(
        config.model_dump(mode="json"), split_file, file_sha256(split_file), "cpu", data_summary, processes=1
    )
    write_description(run_dir, description)
    metadata = new_model_metadata(
        run_dir,
        description,
        extractor.spec,
        arch=config.arch,
        head="stage_statistics_probe",
        framing=config.framing,
        metrics={"val_auc_at_training": val_auc, "epoch": 1},
        training=config.model_dump(mode="json"),
    )
    save_model(network, metadata, run_dir / RUN_BEST_MODEL_FILE)
    write_epochs(run_dir, [epoch_record])  # last: a fold with its metrics line has its model file
    console.print(f"probe fitted: val AUC {val_auc:.4f}, {seconds:.0f} s")
    return run_dir / RUN_BEST_MODEL_FILE
