"""The training loop, top to bottom: data, model, optimiser, epochs, checkpoints.

A run directory holds everything a run wrote: `config.json` (the recipe and the split it used),
`metrics.jsonl` (one line per finished epoch), `checkpoint.pt` (the last finished epoch, for `--resume`)
and `best.safetensors` (the epoch with the best validation AUC). Every file is written atomically.

With `distributed_run`, under `torchrun`, the processes train one model data-parallel (DistributedDataParallel):
each takes its share of every epoch; the main process alone validates, prints and writes the run's files, in the
same format as a single-process run.
"""

from __future__ import annotations

import json
import logging
import math
import random
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    track,
)
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from detecteur import __version__
from detecteur.config import (
    RUN_BEST_MODEL_FILE,
    RUN_CHECKPOINT_FILE,
    RUN_CONFIG_FILE,
    RUN_METRICS_FILE,
    TrainConfig,
)
from detecteur.files import atomic_path, atomic_write_text, file_sha256
from detecteur.model.networks import (
    ModelFileError,
    ModelMetadata,
    autocast_context,
    build,
    input_spec_for,
    load_model,
    mixed_precision_pays,
    pick_device,
    predict_logits,
    save_model,
)
from detecteur.model.probabilities import fake_probabilities
from detecteur.training import distributed
from detecteur.training.data import (
    ImageRecord,
    draw_shares,
    make_loader,
    open_image,
    read_records,
    sampling_weights,
    select_split,
    sharpness,
    stratified_subset,
    summarise,
    training_transforms,
    without_sources,
)
from detecteur.training.metrics import compute_metrics, roc_auc_by_group

log = logging.getLogger(__name__)
console = Console(stderr=True)


class RunError(RuntimeError):
    """A run directory that cannot be started or resumed as asked."""


def current_git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def read_epoch_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / RUN_METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# Settings a resumed run may change: a longer schedule, or a different machine's worker count.
RESUMABLE_CHANGES = {"epochs", "num_workers"}


def _recipe_changes(started_with: dict[str, Any], config: TrainConfig) -> list[str]:
    now = config.model_dump(mode="json")
    # A setting added after the run started was, for that run, its default.
    started_with = {**TrainConfig().model_dump(mode="json"), **started_with}
    return sorted(
        key for key in (now.keys() | started_with.keys()) - RESUMABLE_CHANGES if now.get(key) != started_with.get(key)
    )


def _sampling_weights(records: list[ImageRecord], config: TrainConfig) -> tuple[list[float], dict[str, Any]]:
    """The recipe's sampling weights (source and/or sharpness balancing), and what they do: the share of draws
    per source and class, and the ROC AUC of sharpness alone as a real/fake score, before and after weighting
    (0.5 = no information)."""
    labels = [r.label for r in records]
    values = [sharpness(open_image(r.path)) for r in track(records, description="measuring sharpness", console=console)]
    weights = sampling_weights(records, values, config.balance_sources, config.balance_sharpness)
    proof = {
        "sharpness_auc_unweighted": float(roc_auc_score(labels, values)),
        "sharpness_auc_weighted": float(roc_auc_score(labels, values, sample_weight=weights)),
        "draw_shares": draw_shares(records, weights),
    }
    console.print(
        f"sharpness as a real/fake score: AUC {proof['sharpness_auc_unweighted']:.3f} on the training images, "
        f"{proof['sharpness_auc_weighted']:.3f} as sampled"
    )
    return weights.tolist(), proof


def epoch_learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate of `epoch` (1-based) under the recipe's schedule."""
    if config.lr_schedule == "constant":
        return config.lr
    progress = (epoch - 1) / config.epochs
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed epoch `epoch` (1-based) of a run with recipe seed `seed` draws its sampling order and augmentation
    from (scaled per process in a multi-process run)."""
    return seed + epoch


def _epoch_seeds(seed: int, epochs: int) -> set[int]:
    return {epoch_seed(seed, epoch) for epoch in range(1, epochs + 1)}


def _start_from_saved_weights(model: nn.Module, config: TrainConfig) -> str:
    """Load `config.init_weights` into `model`; returns the file's sha256 for the run's records."""
    assert config.init_weights is not None
    try:
        saved, metadata = load_model(config.init_weights)
    except ModelFileError as error:
        # A pinned file is a released model no longer in the checkout: the recipe's comment names its commit.
        how_to_get = "; the recipe's comment says which commit holds it" if config.init_weights_sha256 else ""
        raise RunError(f"init_weights: {error}{how_to_get}") from error
    sha256 = file_sha256(config.init_weights)
    if config.init_weights_sha256 is not None and sha256 != config.init_weights_sha256:
        raise RunError(
            f"init_weights {config.init_weights} has sha256 {sha256}, but the recipe pins "
            f"{config.init_weights_sha256}: not the file this stage starts from"
        )
    expected = (config.arch, config.in_chans, config.input_size, config.framing)
    found = (metadata.arch, metadata.in_chans, metadata.input_size, metadata.framing)
    if found != expected:
        raise RunError(
            f"init_weights {config.init_weights} is a model for (arch, channels, input size, framing) = {found}, "
            f"but this recipe trains {expected}"
        )
    parent_seed, parent_epochs = metadata.training.get("seed"), metadata.training.get("epochs")
    if isinstance(parent_seed, int) and isinstance(parent_epochs, int):
        # A stage whose epoch seeds overlap its starting model's replays that model's own training crops, which
        # it recognises (measured: training accuracy 0.9996 in the first epoch).
        replayed = _epoch_seeds(parent_seed, parent_epochs) & _epoch_seeds(config.seed, config.epochs)
        if replayed:
            log.warning(
                "init_weights %s was trained with epoch seeds %s too: this stage replays its training crops; "
                "give the recipe a seed beyond %d",
                config.init_weights,
                sorted(replayed),
                parent_seed + parent_epochs,
            )
    model.load_state_dict(saved.state_dict())
    return sha256


def _write_epoch_metrics(history: list[dict[str, Any]], run_dir: Path) -> None:
    atomic_write_text(run_dir / RUN_METRICS_FILE, "".join(json.dumps(record) + "\n" for record in history))


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def train(
    config: TrainConfig,
    split_file: Path,
    run_dir: Path,
    resume: bool = False,
    device_name: str | None = None,
    distributed_run: bool = False,
) -> Path:
    """Train per `config` on the split in `split_file`; returns the best model file of the run. With
    `distributed_run`, this is one of the processes `torchrun` started (see the module's docstring)."""
    device = pick_device(device_name)
    processes = distributed.SINGLE_PROCESS
    if distributed_run:
        if not distributed.launched_by_torchrun():
            raise RunError("--ddp runs under torchrun, e.g. torchrun --nproc-per-node 2 -m detecteur train --ddp ...")
        processes = distributed.start(device.type)
        if device.type == "cuda":
            device = torch.device("cuda", processes.local_rank)
        console.quiet = not processes.is_main
    try:
        return _train(config, split_file, run_dir, resume, device, processes)
    finally:
        distributed.stop(processes)


def _train(
    config: TrainConfig,
    split_file: Path,
    run_dir: Path,
    resume: bool,
    device: torch.device,
    processes: distributed.Processes,
) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = run_dir / RUN_CHECKPOINT_FILE
    if checkpoint_path.exists() and not resume:
        raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    split_sha256 = file_sha256(split_file)

    records = without_sources(read_records(split_file), config.exclude_sources)
    train_records = stratified_subset(select_split(records, "train"), config.max_train_images, config.seed)
    val_records = stratified_subset(select_split(records, "val"), config.max_eval_images, config.seed)
    data_summary: dict[str, Any] = summarise(train_records + val_records)
    sample_weights: list[float] | None = None
    if config.balance_sharpness or config.balance_sources:
        sample_weights, data_summary["sharpness_shortcut"] = _sampling_weights(train_records, config)
    spec = input_spec_for(config.arch, config.in_chans, config.input_size)
    train_transform, val_transform = training_transforms(spec, config.augment, config.framing, config.crop_files)

    _seed_everything(config.seed)
    model = build(config.arch, in_chans=config.in_chans, pretrained=config.pretrained and not config.init_weights)
    if config.init_weights is not None:
        data_summary["init_weights_sha256"] = _start_from_saved_weights(model, config)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    class_weights = torch.tensor(config.class_weights, dtype=torch.float32, device=device)
    criterion = nn.CrossEntropyLoss(weight=class_weights)
    use_amp = config.mixed_precision and mixed_precision_pays(device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda")

    start_epoch, best_val_auc, epochs_since_best = 1, -1.0, 0
    if resume:
        # A run killed while writing a file leaves the temporary copy behind (the file itself is intact).
        for stale in run_dir.glob(".*.tmp"):
            stale.unlink()
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if state["split_sha256"] != split_sha256:
            raise RunError(f"{split_file} differs from the split this run started with; refusing to resume")
        changed = _recipe_changes(state["config"], config)
        if changed:
            raise RunError(f"the recipe changed since this run started ({', '.join(changed)}); refusing to resume")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"]) + 1
        best_val_auc, epochs_since_best = float(state["best_val_auc"]), int(state["epochs_since_best"])
        console.print(f"resuming {run_dir} after epoch {start_epoch - 1} (best val AUC {best_val_auc:.4f})")
    # Epoch lines past the checkpoint belong to an epoch whose checkpoint never landed: drop them.
    epoch_history = [m for m in read_epoch_metrics(run_dir) if m["epoch"] < start_epoch]
    if processes.is_main:
        _write_epoch_metrics(epoch_history, run_dir)
    run_description = {
        "config": config.model_dump(mode="json"),
        "split_file": str(split_file),
        "split_sha256": split_sha256,
        "device": str(device),
        "data_summary": data_summary,
        "package_version": __version__,
        "git_commit": current_git_commit(),
        "processes": processes.world_size,
    }
    if processes.is_main:
        atomic_write_text(run_dir / RUN_CONFIG_FILE, json.dumps(run_description, indent=2) + "\n")
    console.print(
        f"training {config.arch} ({config.in_chans} channels) on {len(train_records)} images, "
        f"validating on {len(val_records)}, device {device}, mixed precision {use_amp}, "
        f"{processes.world_size} process(es)"
    )
    # The recipe's batch size is the global one, so that a recipe means the same on any number of processes.
    process_batch_size = max(1, config.batch_size // processes.world_size)
    trained: nn.Module = model
    if processes.world_size > 1:
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    val_loader = make_loader(
        val_records, spec, None, config.batch_size, config.num_workers, config.seed, False, transform=val_transform
    )
    val_sources = [record.source for record in val_records]  # in loader order: shuffle=False
    for epoch in range(start_epoch, config.epochs + 1):
        if epochs_since_best >= config.early_stopping_patience:
            break
        # Seeding per epoch makes an epoch's shuffling and augmentation the same whether or not the run
        # was interrupted before it; per process, so that processes do not augment in lockstep.
        _seed_everything(epoch_seed(config.seed, epoch) * processes.world_size + processes.rank)
        for group in optimizer.param_groups:
            group["lr"] = epoch_learning_rate(config, epoch)
        train_loader = make_loader(
            train_records,
            spec,
            config.augment,
            process_batch_size,
            config.num_workers,
            epoch_seed(config.seed, epoch),
            shuffle=True,
            sample_weights=sample_weights,
            transform=train_transform,
            shard=processes.shard,
            self_blend_probability=config.self_blend_probability,
        )
        started = time.perf_counter()
        trained.train()
        loss_sum, correct, seen = 0.0, 0, 0
        with _progress() as progress:
            task = progress.add_task(f"epoch {epoch}/{config.epochs}", total=len(train_loader), loss=0.0)
            for inputs, labels in train_loader:
                inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with autocast_context(device, use_amp):
                    logits = trained(inputs)
                loss = criterion(logits.float(), labels)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.item() * len(labels)
                correct += int((logits.argmax(dim=1) == labels).sum())
                seen += len(labels)
                progress.update(task, advance=1, loss=loss_sum / seen)
        train_seconds = time.perf_counter() - started
        totals = distributed.sum_over_processes([loss_sum, correct, seen], processes, device)
        loss_sum, correct, seen = totals[0], int(totals[1]), int(totals[2])
        if not processes.is_main:
            # Validation and the run's files are the main process's; the others follow its early-stopping count.
            val_auc = distributed.from_main(0.0, processes, device)
            improved = val_auc > best_val_auc
            best_val_auc, epochs_since_best = (val_auc, 0) if improved else (best_val_auc, epochs_since_best + 1)
            continue

        val_logits, val_labels = predict_logits(model, val_loader, device, use_amp)
        val_loss = float(criterion(torch.from_numpy(val_logits).to(device), torch.from_numpy(val_labels).to(device)))
        val_probs = fake_probabilities(val_logits)
        val_metrics = compute_metrics(val_labels, val_probs, threshold=0.5)
        val_auc = val_metrics["roc_auc"] if val_metrics["roc_auc"] is not None else 0.0
        val_auc = distributed.from_main(val_auc, processes, device)
        epoch_record = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_auc": val_auc,
            "val_accuracy": val_metrics["accuracy"],
            "val_auc_by_source": roc_auc_by_group(val_sources, val_labels, val_probs),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
            "images_per_second": seen / train_seconds if train_seconds > 0 else 0.0,
        }

        if val_auc > best_val_auc:
            best_val_auc, epochs_since_best = val_auc, 0
            metadata = ModelMetadata(
                version=f"{__version__}+{run_dir.name}",
                arch=config.arch,
                input_size=spec.input_size,
                in_chans=spec.in_chans,
                framing=config.framing,
                mean=spec.mean,
                std=spec.std,
                metrics={"val_auc_at_training": val_auc, "epoch": epoch},
                data_summary=data_summary,
                training=config.model_dump(mode="json"),
                git_commit=run_description["git_commit"],
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            save_model(model, metadata, run_dir / RUN_BEST_MODEL_FILE)
        else:
            epochs_since_best += 1
        epoch_history.append(epoch_record)
        _write_epoch_metrics(epoch_history, run_dir)
        _atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "best_val_auc": best_val_auc,
                "epochs_since_best": epochs_since_best,
                "config": config.model_dump(mode="json"),
                "split_sha256": split_sha256,
            },
            checkpoint_path,
        )
        console.print(
            f"epoch {epoch}: train loss {epoch_record['train_loss']:.4f} "
            f"acc {epoch_record['train_accuracy']:.4f} | "
            f"val loss {val_loss:.4f} AUC {val_auc:.4f} acc {val_metrics['accuracy']:.4f} | "
            f"{epoch_record['images_per_second']:.1f} img/s, {epoch_record['seconds']:.0f} s"
        )
    return run_dir / RUN_BEST_MODEL_FILE
