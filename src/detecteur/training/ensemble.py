"""`detecteur ensemble`: one model made of several trained runs, their logits averaged.

The result is a run directory like any other — `best.safetensors` (the members' weights under `members.<i>.`)
and `config.json` — so `detecteur evaluate` calibrates it on validation and `detecteur ship` ships it unchanged.
It has no `metrics.jsonl`: nothing is trained; its `config.json` names the member runs under `ensemble`.
Members must have been trained on the same split and see the same input (channels, size, framing,
normalisation), and share the class weights the calibration undoes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detecteur import __version__
from detecteur.config import ENSEMBLE, RUN_BEST_MODEL_FILE, RUN_CONFIG_FILE, Arch
from detecteur.files import atomic_write_text
from detecteur.model.networks import LogitAverage, ModelFileError, ModelMetadata, load_model, save_model
from detecteur.training.train import current_git_commit

# In an ensemble run's config.json: the member run directories, in member order.
ENSEMBLE_KEY = "ensemble"


class EnsembleError(ValueError):
    """Runs that cannot be combined, with the reason."""


def is_ensemble_run(description: dict[str, Any]) -> bool:
    return ENSEMBLE_KEY in description


def _input_of(metadata: ModelMetadata) -> tuple[Any, ...]:
    return (metadata.in_chans, metadata.input_size, metadata.framing, metadata.mean, metadata.std)


def combine_runs(member_runs: list[Path], run_dir: Path) -> Path:
    """Write the ensemble of `member_runs`' best models into `run_dir`; returns its model file."""
    if len(member_runs) < 2:
        raise EnsembleError(f"an ensemble needs at least 2 runs, got {len(member_runs)}")
    if len({run.resolve() for run in member_runs}) < len(member_runs):
        raise EnsembleError("the same run is named twice")
    if (run_dir / RUN_CONFIG_FILE).exists():
        raise EnsembleError(f"{run_dir} holds a run already; choose a new directory")
    descriptions, networks, metadatas = [], [], []
    for run in member_runs:
        try:
            descriptions.append(json.loads((run / RUN_CONFIG_FILE).read_text()))
            network, metadata = load_model(run / RUN_BEST_MODEL_FILE)
        except (OSError, json.JSONDecodeError, ModelFileError) as error:
            raise EnsembleError(f"{run} is not a finished training run: {error}") from error
        if metadata.arch == ENSEMBLE:
            raise EnsembleError(f"{run} is an ensemble already; name its member runs instead")
        networks.append(network)
        metadatas.append(metadata)
    first, first_metadata = descriptions[0], metadatas[0]
    for run, description, metadata in zip(member_runs[1:], descriptions[1:], metadatas[1:], strict=True):
        if description["split_sha256"] != first["split_sha256"]:
            raise EnsembleError(f"{run} was trained on another split than {member_runs[0]}")
        if _input_of(metadata) != _input_of(first_metadata):
            raise EnsembleError(
                f"{run} sees another input than {member_runs[0]} (channels, size, framing, normalisation): "
                f"{_input_of(metadata)} against {_input_of(first_metadata)}"
            )
        if description["config"]["class_weights"] != first["config"]["class_weights"]:
            raise EnsembleError(f"{run} was trained with other class weights than {member_runs[0]}")

    members: tuple[Arch, ...] = tuple(metadata.arch for metadata in metadatas)  # type: ignore[misc]
    metadata = ModelMetadata(
        version=f"{__version__}+{run_dir.name}",
        arch=ENSEMBLE,
        members=members,
        input_size=first_metadata.input_size,
        in_chans=first_metadata.in_chans,
        framing=first_metadata.framing,
        mean=first_metadata.mean,
        std=first_metadata.std,
        data_summary=first_metadata.data_summary,
        training={ENSEMBLE_KEY: [str(run) for run in member_runs]},
        git_commit=current_git_commit(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    model_file = run_dir / RUN_BEST_MODEL_FILE
    save_model(LogitAverage(networks), metadata, model_file)
    description = {
        # Evaluation reads batch size, workers and class weights from here: the first member's recipe.
        "config": first["config"],
        ENSEMBLE_KEY: [str(run) for run in member_runs],
        "members": members,
        "split_file": first["split_file"],
        "split_sha256": first["split_sha256"],
        "device": first["device"],
        "data_summary": first["data_summary"],
        "package_version": __version__,
        "git_commit": metadata.git_commit,
        "processes": 1,
    }
    atomic_write_text(run_dir / RUN_CONFIG_FILE, json.dumps(description, indent=2) + "\n")
    return model_file
