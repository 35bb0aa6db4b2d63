"""The training loop, top to bottom: data, model, optimiser, then per epoch `train_one_epoch`, `validate` and a
checkpoint (the stages of the torchvision reference scripts).

A run directory holds everything a run wrote: `config.json` (the recipe and the split it used),
`metrics.jsonl` (one line per finished epoch), `checkpoint.pt` (the last finished epoch, for `--resume`)
and `best.safetensors` (the epoch with the best validation AUC). Every file is written atomically.

With `distributed_run`, under `torchrun`, the processes train one model data-parallel (DistributedDataParallel):
each takes its share of every epoch; the main process alone validates, prints and writes the run's files, in the
same format as a single-process run.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from detecteur.config import RUN_BEST_MODEL_FILE, RUN_CHECKPOINT_FILE, TrainConfig
from detecteur.files import file_sha256
from detecteur.inputs.preprocess import InputSpec
from detecteur.model.networks import (
    ModelFileError,
    build,
    freeze_leading_stages,
    input_spec_for,
    load_model,
    pick_device,
    save_model,
)
from detecteur.training import distributed
from detecteur.training.augment import training_transforms
from detecteur.training.data import (
    ImageRecord,
    make_loader,
    read_records,
    select_split,
    stratified_subset,
    summarise,
    without_sources,
)
from detecteur.training.runs import (
    EpochRecord,
    RunDescription,
    RunError,
    describe_run,
    new_model_metadata,
    read_epochs,
    write_description,
    write_epochs,
)
from detecteur.training.sampling import reals_without_look_alike_fakes, recipe_sampling_weights
from detecteur.training.stages import (
    Optimisation,
    RunState,
    Validation,
    console,
    load_checkpoint,
    make_optimisation,
    save_checkpoint,
    train_one_epoch,
    validate,
)

log = logging.getLogger(__name__)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    if config.method == "frozen_probe":
        from detecteur.training.probe import fit_probe

        return fit_probe(config, split_file, run_dir)
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


@dataclass
class TrainingData:
    """The split's images for one run, as the recipe selects and samples them."""

    train_records: list[ImageRecord]
    val_records: list[ImageRecord]
    summary: dict[str, Any]
    sample_weights: list[float] | None
    # Real sources whose draws become self-blended fakes at another rate than the recipe's (unmatched looks).
    self_blend_by_source: dict[str, float]
    spec: InputSpec
    train_transform: Callable[[Image.Image], torch.Tensor]
    val_transform: Callable[[Image.Image], torch.Tensor]


def _select_data(config: TrainConfig, split_file: Path) -> TrainingData:
    records = without_sources(read_records(split_file), config.exclude_sources)
    train_records = stratified_subset(select_split(records, "train"), config.max_train_images, config.seed)
    val_records = stratified_subset(select_split(records, "val"), config.max_eval_images, config.seed)
    summary: dict[str, Any] = summarise(train_records + val_records)
    sample_weights: list[float] | None = None
    if config.balance_sharpness or config.balance_sources or config.look_alike_reals:
        sample_weights, summary["sharpness_shortcut"] = recipe_sampling_weights(train_records, config)
    self_blend_by_source: dict[str, float] = {}
    if config.self_blend_probability_unmatched is not None:
        unmatched = reals_without_look_alike_fakes(train_records, config.look_alike_reals)
        self_blend_by_source = {source: config.self_blend_probability_unmatched for source in sorted(unmatched)}
        summary["self_blend_by_source"] = self_blend_by_source
    spec = input_spec_for(config.arch, config.in_chans, config.input_size, config.pixel_signal)
    train_transform, val_transform = training_transforms(spec, config.augment, config.framing, config.crop_files)
    return TrainingData(
        train_records, val_records, summary, sample_weights, self_blend_by_source, spec, train_transform, val_transform
    )


def _train(
    config: TrainConfig,
    split_file: Path,
    run_dir: Path,
    resume: bool,
    device: torch.device,
    processes: distributed.Processes,
) -> Path:
    checkpoint_path = run_dir / RUN_CHECKPOINT_FILE
    if checkpoint_path.exists() and not resume:
        raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    split_sha256 = file_sha256(split_file)
    data = _select_data(config, split_file)

    _seed_everything(config.seed)
    model = build(config.arch, in_chans=config.in_chans, pretrained=config.pretrained and not config.init_weights)
    if config.init_weights is not None:
        data.summary["init_weights_sha256"] = _start_from_saved_weights(model, config)
    if config.frozen_stages:
        data.summary["frozen_weights"] = freeze_leading_stages(model, config.frozen_stages)
    model = model.to(device)
    optim = make_optimisation(model, config, device)
    state = _resume(run_dir, resume, model, optim, config, split_file, split_sha256)
    # Epoch lines past the checkpoint belong to an epoch whose checkpoint never landed: drop them.
    epoch_history = [epoch for epoch in read_epochs(run_dir) if epoch.epoch < state.next_epoch]
    description = describe_run(
        config.model_dump(mode="json"), split_file, split_sha256, str(device), data.summary, processes.world_size
    )
    if processes.is_main:
        write_epochs(run_dir, epoch_history)
        write_description(run_dir, description)
    console.print(
        f"training {config.arch} ({config.in_chans} channels) on {len(data.train_records)} images, "
        f"validating on {len(data.val_records)}, device {device}, mixed precision {optim.use_amp}, "
        f"{processes.world_size} process(es)"
    )
    trained: nn.Module = model
    if processes.world_size > 1:
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    val_loader = make_loader(
        data.val_records,
        data.spec,
        None,
        config.batch_size,
        config.num_workers,
        config.seed,
        False,
        transform=data.val_transform,
    )
    val_sources = [record.source for record in data.val_records]  # in loader order: shuffle=False
    for epoch in range(state.next_epoch, config.epochs + 1):
        if state.epochs_since_best >= config.early_stopping_patience:
            break
        train_loader = _epoch_loader(data, config, epoch, optim, processes)
        started = time.perf_counter()
        totals = train_one_epoch(trained, train_loader, optim, f"epoch {epoch}/{config.epochs}")
        summed = distributed.sum_over_processes([totals.loss_sum, totals.correct, totals.seen], processes, device)
        # Validation and the run's files are the main process's; every process counts the epoch towards early
        # stopping with the main process's AUC, so that all of them stop together.
        validation = validate(model, val_loader, val_sources, optim) if processes.is_main else None
        val_auc = distributed.from_main(validation.auc if validation else 0.0, processes, device)
        improved = state.record(val_auc)
        if validation is None:
            continue
        record = _epoch_record(epoch, summed, totals.seconds, time.perf_counter() - started, validation, optim)
        if improved:
            _save_best(model, run_dir, description, data, config, record)
        epoch_history.append(record)
        write_epochs(run_dir, epoch_history)
        save_checkpoint(checkpoint_path, model, optim, epoch, state, config, split_sha256)
        _print_epoch(record)
    return run_dir / RUN_BEST_MODEL_FILE


def _save_best(
    model: nn.Module,
    run_dir: Path,
    description: RunDescription,
    data: TrainingData,
    config: TrainConfig,
    record: EpochRecord,
) -> None:
    """`best.safetensors`: the weights of the best epoch so far, with what the run knows of them."""
    metrics = {"val_auc_at_training": record.val_auc, "epoch": record.epoch}
    metadata = new_model_metadata(
        run_dir,
        description,
        data.spec,
        arch=config.arch,
        framing=config.framing,
        metrics=metrics,
        training=config.model_dump(mode="json"),
    )
    save_model(model, metadata, run_dir / RUN_BEST_MODEL_FILE)


def _resume(
    run_dir: Path,
    resume: bool,
    model: nn.Module,
    optim: Optimisation,
    config: TrainConfig,
    split_file: Path,
    split_sha256: str,
) -> RunState:
    """A new run's state, or with `resume` the state of its last checkpoint (none yet: a new run's)."""
    if not resume:
        return RunState()
    # A run killed while writing a file leaves the temporary copy behind (the file itself is intact).
    for stale in run_dir.glob(".*.tmp"):
        stale.unlink()
    checkpoint_path = run_dir / RUN_CHECKPOINT_FILE
    if not checkpoint_path.exists():
        return RunState()
    state = load_checkpoint(checkpoint_path, model, optim, config, split_file, split_sha256)
    console.print(f"resuming {run_dir} after epoch {state.next_epoch - 1} (best val AUC {state.best_val_auc:.4f})")
    return state


def _epoch_loader(
    data: TrainingData, config: TrainConfig, epoch: int, optim: Optimisation, processes: distributed.Processes
) -> DataLoader[Any]:
    """Epoch `epoch`'s training batches for this process, its learning rate set."""
    # Seeding per epoch makes an epoch's shuffling and augmentation the same whether or not the run
    # was interrupted before it; per process, so that processes do not augment in lockstep.
    _seed_everything(epoch_seed(config.seed, epoch) * processes.world_size + processes.rank)
    for group in optim.optimizer.param_groups:
        group["lr"] = epoch_learning_rate(config, epoch)
    # The recipe's batch size is the global one, so that a recipe means the same on any number of processes.
    return make_loader(
        data.train_records,
        data.spec,
        config.augment,
        max(1, config.batch_size // processes.world_size),
        config.num_workers,
        epoch_seed(config.seed, epoch),
        shuffle=True,
        sample_weights=data.sample_weights,
        transform=data.train_transform,
        shard=processes.shard,
        self_blend_probability=config.self_blend_probability,
        self_blend_by_source=data.self_blend_by_source,
        upsampling_trace_probability=config.upsampling_trace_probability,
    )


def _epoch_record(
    epoch: int,
    summed: list[float],
    train_seconds: float,
    seconds: float,
    validation: Validation,
    optim: Optimisation,
) -> EpochRecord:
    """The epoch's line in `metrics.jsonl`, from the loss, correct predictions and images summed over processes."""
    loss_sum, correct, seen = summed[0], int(summed[1]), int(summed[2])
    return EpochRecord(
        epoch=epoch,
        train_loss=loss_sum / max(seen, 1),
        train_accuracy=correct / max(seen, 1),
        val_loss=validation.loss,
        val_auc=validation.auc,
        val_accuracy=validation.accuracy,
        val_auc_by_source=validation.auc_by_source,
        lr=optim.optimizer.param_groups[0]["lr"],
        seconds=seconds,
        images_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
    )


def _print_epoch(record: EpochRecord) -> None:
    console.print(
        f"epoch {record.epoch}: train loss {record.train_loss:.4f} acc {record.train_accuracy:.4f} | "
        f"val loss {record.val_loss:.4f} AUC {record.val_auc:.4f} acc {record.val_accuracy:.4f} | "
        f"{record.images_per_second or 0.0:.1f} img/s, {record.seconds:.0f} s"
    )
