"""`detecteur ensemble`: one model made of several trained runs, their logits averaged.

The result is a run directory like any other — `best.safetensors` (the members' weights under `members.<i>.`)
and `config.json` — so `detecteur evaluate` calibrates it on validation and `detecteur ship` ships it unchanged.
It has no `metrics.jsonl`: nothing is trained; its `config.json` names the member runs under `ensemble`.
Members must have been trained on the same split and see the same input (channels, size, framing,
normalisation), and share the class weights the calibration undoes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from detecteur.config import ENSEMBLE, RUN_BEST_MODEL_FILE, RUN_CONFIG_FILE, Arch
from detecteur.model.networks import LogitAverage, ModelFileError, ModelMetadata, load_model, save_model
from detecteur.training.runs import describe_run, new_model_metadata, read_description, write_description

# In an ensemble's model metadata (`training`): the member run directories, in member order, as its
# `config.json` records them (`RunDescription.ensemble`).
ENSEMBLE_KEY = "ensemble"


class EnsembleError(ValueError):
    """Runs that cannot be combined, with the reason."""


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
            descriptions.append(read_description(run))
            network, metadata = load_model(run / RUN_BEST_MODEL_FILE)
        except (OSError, ValidationError, ModelFileError) as error:
            raise EnsembleError(f"{run} is not a finished training run: {error}") from error
        if metadata.arch == ENSEMBLE:
            raise EnsembleError(f"{run} is an ensemble already; name its member runs instead")
        networks.append(network)
        metadatas.append(metadata)
    first, first_metadata = descriptions[0], metadatas[0]
    for run, description, metadata in zip(member_runs[1:], descriptions[1:], metadatas[1:], strict=True):
        if description.split_sha256 != first.split_sha256:
            raise EnsembleError(f"{run} was trained on another split than {member_runs[0]}")
        if _input_of(metadata) != _input_of(first_metadata):
            raise EnsembleError(
                f"{run} sees another input than {member_runs[0]} (channels, size, framing, normalisation): "
                f"{_input_of(metadata)} against {_input_of(first_metadata)}"
            )
        if description.config["class_weights"] != first.config["class_weights"]:
            raise EnsembleError(f"{run} was trained with other class weights than {member_runs[0]}")

    members: tuple[Arch, ...] = tuple(metadata.arch for metadata in metadatas)  # type: ignore[misc]
    member_names = [str(run) for run in member_runs]
    description = describe_run(
        # Evaluation reads batch size, workers and class weights from here: the first member's recipe.
        first.config,
        first.split_file,
        first.split_sha256,
        first.device,
        first.data_summary,
        processes=1,
        ensemble=member_names,
        members=list(members),
    )
    metadata = new_model_metadata(
        run_dir,
        description,
        first_metadata.input_spec,
        arch=ENSEMBLE,
        members=members,
        framing=first_metadata.framing,
        training={ENSEMBLE_KEY: member_names},
    )
    model_file = run_dir / RUN_BEST_MODEL_FILE
    save_model(LogitAverage(networks), metadata, model_file)
    write_description(run_dir, description)
    return model_file
