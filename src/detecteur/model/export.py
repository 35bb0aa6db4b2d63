"""ONNX export of a model file, for the ONNX Runtime serving backend.

The graph holds the network only: its input is the N×C×H×W tensor of `preprocess.preprocess`, so the torch and
ONNX Runtime backends are fed by the same function and cannot drift apart. The ONNX file carries the model
file's metadata and the sha256 of the safetensors file it was exported from; serving re-exports when they no
longer match (a new model version never runs on an old graph). Every export is checked against torch before it
is renamed into place: calibrated fake probabilities must agree within `MAX_PROBABILITY_DIFFERENCE`.

Exporting needs torch; serving with ONNX Runtime must not load it (docs/lean-serving.md). So torch is imported
inside the exporting functions only, and the service gets its graph through `graph_for_serving`: the graph at
`DETECTEUR_ONNX_PATH` or in the cache when it was exported from this very model file, else one export in a child
process (`python -m detecteur export`), so the serving process itself never imports torch.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detecteur.files import atomic_path, file_sha256
from detecteur.model.file import METADATA_KEY, ModelFileError, ModelMetadata, read_metadata
from detecteur.model.probabilities import fake_probabilities

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 18
SOURCE_SHA256_KEY = "source_sha256"
MAX_PROBABILITY_DIFFERENCE = 1e-4
# Inputs of the export check: a batch of several images so the dynamic batch axis is exercised too.
CHECK_BATCH = 3


def default_cache_dir() -> Path:
    """Where exported graphs live unless configured: $XDG_CACHE_HOME/detecteur (~/.cache/detecteur)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "detecteur"


def onnx_path_for(model_path: Path, cache_dir: Path, model_sha256: str | None = None) -> Path:
    """The cached graph of `model_path`: named after its content, so two versions never share a file."""
    digest = model_sha256 or file_sha256(model_path)
    return cache_dir / f"{model_path.stem}-{digest[:16]}.onnx"


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with `threads` intra-op threads. Spinning is off: on shared cores, worker
    threads that busy-wait for the next operator steal the CPU other requests (and processes) need."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_onnx_metadata(path: Path) -> tuple[ModelMetadata, str]:
    """(model metadata, sha256 of the safetensors file it was exported from) of an exported graph."""
    try:
        properties = onnx_metadata_props(path)
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{path} is not a readable ONNX file: {error}") from error
    if METADATA_KEY not in properties or SOURCE_SHA256_KEY not in properties:
        raise ModelFileError(f"{path} has no '{METADATA_KEY}' metadata; it was not exported by detecteur")
    try:
        metadata = ModelMetadata.model_validate(json.loads(properties[METADATA_KEY]))
    except ValueError as error:
        raise ModelFileError(f"{path}: metadata not understood by this version: {error}") from error
    return metadata, properties[SOURCE_SHA256_KEY]


# ModelProto.metadata_props and StringStringEntryProto's key and value, in onnx.proto's numbering.
METADATA_PROPS_FIELD, ENTRY_KEY_FIELD, ENTRY_VALUE_FIELD = 14, 1, 2


def onnx_metadata_props(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, read from the protobuf wire format without parsing the graph: the weights
    are most of the file, and `onnx.load` would hold them all in the service's memory (and import onnx) only to
    check which model file a graph came from. Raises ValueError on a file that is not a protobuf message."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        properties = {}
        for number, start, end in _length_delimited_fields(data, 0, len(data)):
            if number == METADATA_PROPS_FIELD:
                entry = {field: data[a:b].decode() for field, a, b in _length_delimited_fields(data, start, end)}
                properties[entry.get(ENTRY_KEY_FIELD, "")] = entry.get(ENTRY_VALUE_FIELD, "")
        return properties


def _length_delimited_fields(data: mmap.mmap, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field of the protobuf message in data[start:end];
    numbers, fixed32 and fixed64 fields are skipped."""
    position = start
    while position < end:
        key, position = _varint(data, position, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, position = _varint(data, position, end)
            if position + length > end:
                raise ValueError("truncated protobuf field")
            yield number, position, position + length
            position += length
        elif wire_type == 0:
            _, position = _varint(data, position, end)
        elif wire_type in (1, 5):
            position += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"not a protobuf message (wire type {wire_type})")
    if position != end:
        raise ValueError("truncated protobuf message")


def _varint(data: mmap.mmap, position: int, end: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    value = shift = 0
    while position < end and shift < 64:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    raise ValueError("truncated or overlong varint")


def is_current(onnx_path: Path, model_sha256: str) -> bool:
    """True when `onnx_path` exists and was exported from the model file with this sha256."""
    if not onnx_path.is_file():
        return False
    try:
        return read_onnx_metadata(onnx_path)[1] == model_sha256
    except ModelFileError as error:
        log.warning("ignoring %s: %s", onnx_path, error)
        return False


def export_onnx(model_path: Path, out: Path) -> Path:
    """Export `model_path` to `out` (atomically), after checking ONNX Runtime agrees with torch on it."""
    import onnx
    import torch

    from detecteur.model.networks import load_model

    metadata = read_metadata(model_path)
    model_sha256 = file_sha256(model_path)
    model, _ = load_model(model_path, "cpu")
    example = torch.zeros(1, metadata.in_chans, metadata.input_size, metadata.input_size)
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter_logs():
            # The exporter warns about its own internals (deprecated torch APIs it calls); nothing to act on.
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # the exporter raises many unrelated types; callers need one
        raise ModelFileError(f"cannot export {model_path} to ONNX: {error}") from error
    if program is None:
        raise ModelFileError(f"torch.onnx.export returned no program for {model_path}")
    proto = program.model_proto
    for key, value in ((METADATA_KEY, metadata.model_dump_json()), (SOURCE_SHA256_KEY, model_sha256)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(out) as temporary:
        onnx.save(proto, str(temporary))
        difference = max_probability_difference(model, temporary, metadata)
        if difference >= MAX_PROBABILITY_DIFFERENCE:
            raise ModelFileError(
                f"ONNX Runtime disagrees with torch on {model_path}: fake probabilities differ by {difference:.2e}"
            )
    log.info("exported %s to %s (max probability difference %.1e)", model_path, out, difference)
    return out


@contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """The ONNX optimiser logs every pass at INFO (hundreds of lines); keep its warnings only."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def max_probability_difference(
    model: torch.nn.Module, onnx_path: Path, metadata: ModelMetadata, inputs: torch.Tensor | None = None
) -> float:
    """Largest |torch − ONNX Runtime| calibrated fake probability over `inputs` (default: a fixed random batch
    shaped like preprocessed crops)."""
    import torch

    if inputs is None:
        generator = torch.Generator().manual_seed(0)
        size = metadata.input_size
        inputs = torch.randn(CHECK_BATCH, metadata.in_chans, size, size, generator=generator)
    session = onnx_session(onnx_path)
    with torch.inference_mode():
        torch_logits = model(inputs).float().numpy()
    onnx_logits = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: inputs.numpy()})[0])
    calibrate = (metadata.temperature, metadata.logit_adjustment)
    return float(
        np.abs(fake_probabilities(torch_logits, *calibrate) - fake_probabilities(onnx_logits, *calibrate)).max()
    )


def ensure_onnx(model_path: Path, onnx_path: Path | None = None, cache_dir: Path | None = None) -> Path:
    """An up-to-date graph of `model_path`: `onnx_path` (default: in `cache_dir`) if it was exported from this
    very file, otherwise a fresh export there."""
    model_sha256 = file_sha256(model_path)
    target = onnx_path or onnx_path_for(model_path, cache_dir or default_cache_dir(), model_sha256)
    if is_current(target, model_sha256):
        return target
    log.info("exporting %s to ONNX at %s (once per model file)", model_path, target)
    return export_onnx(model_path, target)


def graph_for_serving(model_path: Path, onnx_path: Path | None = None, cache_dir: Path | None = None) -> Path:
    """`ensure_onnx` for the service, which must not import torch: an up-to-date graph is used as it is; a missing
    or stale one is exported by a child process (`python -m detecteur export`, torch loads there and dies with it).
    Raises `ModelFileError` when there is no graph and no torch to export one (a `detecteur[serve]` install)."""
    model_sha256 = file_sha256(model_path)
    target = onnx_path or onnx_path_for(model_path, cache_dir or default_cache_dir(), model_sha256)
    if is_current(target, model_sha256):
        return target
    if find_spec("torch") is None:
        raise ModelFileError(
            f"no ONNX graph of {model_path} at {target}, and torch (the `train` extra) is not installed to export "
            "one: run `detecteur export --model MODEL --out GRAPH` where it is, and set DETECTEUR_ONNX_PATH=GRAPH"
        )
    log.info("exporting %s to ONNX at %s in a child process (once per model file)", model_path, target)
    command = [sys.executable, "-m", "detecteur", "export", "--model", str(model_path), "--out", str(target)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not is_current(target, model_sha256):
        raise ModelFileError(f"exporting {model_path} to ONNX failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    return target
