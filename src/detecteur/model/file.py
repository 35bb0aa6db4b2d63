"""The model file without torch: its metadata (what serving needs to use it exactly as trained) and its integrity
check. The ONNX Runtime serving path reads and verifies model files through this module, so it never imports torch;
`model` (the network, training side) builds on it and re-exports its names.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError, safe_open

from detecteur.config import ENSEMBLE, LABEL_NAMES, Arch, Framing, Head, ModelArch, PixelSignal
from detecteur.inputs.preprocess import InputSpec

log = logging.getLogger(__name__)

METADATA_KEY = "detecteur"
FORMAT_VERSION: Literal[1] = 1


class ModelFileError(ValueError):
    """A model file that is missing, damaged, or whose metadata this version does not understand."""


class TrainingStage(BaseModel):
    """One training run in a model's history: from ImageNet (or random) weights, or fine-tuning an earlier model."""

    model_config = ConfigDict(extra="forbid")

    run: str
    epochs: int = Field(ge=0)
    training_minutes: float = Field(ge=0)
    device: str
    started_from: str
    # In an ensemble's history: the index of the member this stage trained (each member has its own chain).
    member: int | None = None


class ModelMetadata(BaseModel):
    """Everything serving needs to use a model file exactly as it was trained and calibrated."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["detecteur-model"] = "detecteur-model"
    format_version: Literal[1] = FORMAT_VERSION
    version: str
    arch: ModelArch
    # For arch "ensemble": the architecture of each member, in the order of the weights' `members.<i>.` prefixes.
    members: tuple[Arch, ...] = ()
    # "classifier": the backbone's own trained classifier; "stage_statistics_probe": a frozen ImageNet backbone read
    # by a fitted linear probe (`model.StageStatisticsProbe`).
    head: Head = "classifier"
    input_size: int = Field(ge=32, le=1024)
    in_chans: Literal[3, 4]
    pixel_signal: PixelSignal = "rgb"
    framing: Framing = "whole_image"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    labels: tuple[str, str] = LABEL_NAMES
    # Subtracted from the logits before the temperature: log of the training class weights, which undoes
    # the prior shift weighted cross-entropy puts into the logits (softmax ∝ weight × true probability).
    logit_adjustment: tuple[float, float] = (0.0, 0.0)
    temperature: float = Field(1.0, gt=0)
    threshold: float = Field(0.5, gt=0, lt=1)
    # Fake probabilities inside this band are reported as "borderline" (max softmax 50–70 %).
    borderline_band: tuple[float, float] = (0.3, 0.7)
    metrics: dict[str, Any] = {}
    data_summary: dict[str, Any] = {}
    training: dict[str, Any] = {}
    git_commit: str | None = None
    created_at: str
    # sha256 of the weights (`weights_sha256`), written by `save_model` and checked by `load_model`: a damaged or
    # tampered file is refused. Files written before it existed have None and load unchecked.
    weights_sha256: str | None = None
    # Every run that led to these weights, oldest first (written by `detecteur ship`); empty in older files.
    training_stages: list[TrainingStage] = []

    @model_validator(mode="after")
    def _check(self) -> ModelMetadata:
        if self.labels != LABEL_NAMES:
            raise ValueError(f"label order {self.labels} differs from this version's {LABEL_NAMES}")
        if (self.arch == ENSEMBLE) != (len(self.members) >= 2):
            raise ValueError(f"arch {self.arch!r} with members {list(self.members)}: an ensemble lists 2 or more")
        if self.head == "stage_statistics_probe" and (self.arch == ENSEMBLE or self.in_chans != 3):
            raise ValueError("a stage-statistics probe reads one RGB (3-channel) ImageNet backbone")
        low, high = self.borderline_band
        if not 0 <= low <= self.threshold <= high <= 1:
            raise ValueError(f"borderline band {self.borderline_band} must contain threshold {self.threshold}")
        return self

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            input_size=self.input_size,
            in_chans=self.in_chans,
            mean=self.mean,
            std=self.std,
            pixel_signal=self.pixel_signal,
        )


def read_metadata(path: Path) -> ModelMetadata:
    """Metadata of a model file, refusing anything this version does not understand."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except Exception as error:
        raise ModelFileError(f"{path} is not a readable safetensors file: {error}") from error
    if raw is None:
        raise ModelFileError(f"{path} has no '{METADATA_KEY}' metadata; it was not written by detecteur")
    try:
        return ModelMetadata.model_validate(json.loads(raw))
    except (ValidationError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: metadata not understood by this version: {error}") from error


def weights_sha256_arrays(state: dict[str, np.ndarray]) -> str:
    """`model.weights_sha256` over NumPy arrays: the same digest for the same weights (dtypes are named as torch
    names them, since that is what the recorded digests hashed)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        array = state[key]  # not np.ascontiguousarray: it turns a 0-d array into shape (1,)
        digest.update(f"{key}\0{TORCH_DTYPE_NAMES[array.dtype.name]}\0{tuple(array.shape)}\0".encode())
        digest.update(array.tobytes(order="C"))
    return digest.hexdigest()


# NumPy dtype name → str(torch dtype), for the dtypes safetensors reads into NumPy (bfloat16 has no NumPy twin).
TORCH_DTYPE_NAMES: dict[str, str] = {
    name: f"torch.{name}"
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
}


def verify_model_file(path: Path) -> ModelMetadata:
    """Check a model file without building the model (and without torch): readable, metadata understood, weights
    matching their sha256. Raises `ModelFileError` saying what is wrong."""
    metadata = read_metadata(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the weights cannot be read (damaged or truncated file?): {error}") from error
    if metadata.weights_sha256 is None:
        log.warning("%s carries no weights sha256; its integrity cannot be checked", path)
    elif any(array.dtype.name not in TORCH_DTYPE_NAMES for array in state.values()):
        raise ModelFileError(f"{path}: weights of a dtype NumPy cannot check; verify it with torch installed")
    elif (actual := weights_sha256_arrays(state)) != metadata.weights_sha256:
        raise ModelFileError(
            f"{path}: the weights do not match the sha256 recorded in the file ({actual[:12]}… instead of "
            f"{metadata.weights_sha256[:12]}…): the file is damaged or was modified; refusing to use it"
        )
    return metadata
