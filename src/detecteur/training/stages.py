"""The stages of a training run, in the torchvision reference scripts' style: `train_one_epoch`, `validate`, and the
checkpoint a killed run resumes from (`save_checkpoint`, `load_checkpoint`). train.py strings them together."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.utils.data import DataLoader

from detecteur.config import TrainConfig
from detecteur.files import atomic_path
from detecteur.model.networks import autocast_context, mixed_precision_pays, predict_logits
from detecteur.model.probabilities import fake_probabilities
from detecteur.training.metrics import compute_metrics, roc_auc_by_group
from detecteur.training.runs import RunError

# Training's progress and messages (quiet in the processes of a distributed run other than the main one).
console = Console(stderr=True)


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


# Settings a resumed run may change: a longer schedule, a different machine's worker count, or the threshold rule
# that evaluation (not training) applies.
RESUMABLE_CHANGES = {"epochs", "num_workers", "max_real_source_fpr"}


def recipe_changes(started_with: dict[str, Any], config: TrainConfig) -> list[str]:
    now = config.model_dump(mode="json")
    # A setting added after the run started was, for that run, its default.
    started_with = {**TrainConfig().model_dump(mode="json"), **started_with}
    return sorted(
        key for key in (now.keys() | started_with.keys()) - RESUMABLE_CHANGES if now.get(key) != started_with.get(key)
    )


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


@dataclass
class Optimisation:
    """What one training step needs besides the model and the batch."""

    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool


@dataclass
class RunState:
    """Where a run stands between epochs: what the checkpoint holds beside the weights."""

    next_epoch: int = 1
    best_val_auc: float = -1.0
    epochs_since_best: int = 0

    def record(self, val_auc: float) -> bool:
        """Count one finished epoch; True when it is the best so far."""
        improved = val_auc > self.best_val_auc
        self.best_val_auc, self.epochs_since_best = (
            (val_auc, 0) if improved else (self.best_val_auc, self.epochs_since_best + 1)
        )
        return improved


@dataclass(frozen=True)
class EpochTotals:
    loss_sum: float
    correct: int
    seen: int
    seconds: float


@dataclass(frozen=True)
class Validation:
    loss: float
    auc: float
    accuracy: float
    auc_by_source: dict[str, float]


def make_optimisation(model: nn.Module, config: TrainConfig, device: torch.device) -> Optimisation:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    class_weights = torch.tensor(config.class_weights, dtype=torch.float32, device=device)
    use_amp = config.mixed_precision and mixed_precision_pays(device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda")
    return Optimisation(optimizer, nn.CrossEntropyLoss(weight=class_weights), scaler, device, use_amp)


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optim: Optimisation,
    epoch: int,
    state: RunState,
    config: TrainConfig,
    split_sha256: str,
) -> None:
    """The state `--resume` continues from, after `epoch` finished."""
    _atomic_torch_save(
        {
            "model": model.state_dict(),
            "optimizer": optim.optimizer.state_dict(),
            "scaler": optim.scaler.state_dict(),
            "epoch": epoch,
            "best_val_auc": state.best_val_auc,
            "epochs_since_best": state.epochs_since_best,
            "config": config.model_dump(mode="json"),
            "split_sha256": split_sha256,
        },
        path,
    )


def load_checkpoint(
    path: Path, model: nn.Module, optim: Optimisation, config: TrainConfig, split_file: Path, split_sha256: str
) -> RunState:
    """Restore a run's weights and optimiser from its checkpoint, refusing another split or a changed recipe."""
    state = torch.load(path, map_location=optim.device, weights_only=True)
    if state["split_sha256"] != split_sha256:
        raise RunError(f"{split_file} differs from the split this run started with; refusing to resume")
    changed = recipe_changes(state["config"], config)
    if changed:
        raise RunError(f"the recipe changed since this run started ({', '.join(changed)}); refusing to resume")
    model.load_state_dict(state["model"])
    optim.optimizer.load_state_dict(state["optimizer"])
    optim.scaler.load_state_dict(state["scaler"])
    return RunState(int(state["epoch"]) + 1, float(state["best_val_auc"]), int(state["epochs_since_best"]))


def train_one_epoch(model: nn.Module, loader: DataLoader[Any], optim: Optimisation, title: str) -> EpochTotals:
    """One pass over `loader`, a step per batch; this process's summed loss, correct predictions and images."""
    started = time.perf_counter()
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    with _progress() as progress:
        task = progress.add_task(title, total=len(loader), loss=0.0)
        for inputs, labels in loader:
            inputs, labels = inputs.to(optim.device, non_blocking=True), labels.to(optim.device, non_blocking=True)
            optim.optimizer.zero_grad(set_to_none=True)
            with autocast_context(optim.device, optim.use_amp):
                logits = model(inputs)
            loss = optim.criterion(logits.float(), labels)
            optim.scaler.scale(loss).backward()
            optim.scaler.step(optim.optimizer)
            optim.scaler.update()
            loss_sum += loss.item() * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += len(labels)
            progress.update(task, advance=1, loss=loss_sum / seen)
    return EpochTotals(loss_sum, correct, seen, time.perf_counter() - started)


def validate(model: nn.Module, loader: DataLoader[Any], sources: list[str], optim: Optimisation) -> Validation:
    """Loss, ROC AUC (0 when one class is missing), accuracy at 0.5 and AUC per source on the validation split."""
    logits, labels = predict_logits(model, loader, optim.device, optim.use_amp)
    device = optim.device
    loss = float(optim.criterion(torch.from_numpy(logits).to(device), torch.from_numpy(labels).to(device)))
    probs = fake_probabilities(logits)
    metrics = compute_metrics(labels, probs, threshold=0.5)
    auc = metrics["roc_auc"] if metrics["roc_auc"] is not None else 0.0
    return Validation(loss, auc, metrics["accuracy"], roc_auc_by_group(sources, labels, probs))
