"""Static int8 quantisation of a model's ONNX graph (`detecteur quantise`), and the choice of graph the service runs.

`quantise_graph` runs ONNX Runtime's static quantiser (QDQ, per-channel int8 weights, uint8 activations) on
calibration inputs, activation ranges from the Percentile method (for 0.9.0, MinMax ranges cost 0.081 AUC on half
the test split and Percentile ranges 0.007: `benchmarks/int8_variants.py`); `training.int8.quantise_model` feeds it
validation faces and measures the result against fp32 on the test split. The int8 graph is written beside the model
file (`int8_graph_path`) with the figures in its metadata; it **passes** only if AUC is within `MAX_AUC_DROP`, ECE
within `MAX_ECE_RISE` and the forward pass at least `MIN_SPEED_UP` times faster. `serving_graph` serves it only
when it passed and was made from this very model file (`DETECTEUR_PRECISION=auto`, the default), or when asked
outright (`int8`).

Quantising needs `onnx` (the `train` extra); choosing a graph to serve reads the file's metadata without it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from detecteur.files import atomic_path, file_sha256
from detecteur.model.export import INPUT_NAME, SOURCE_SHA256_KEY, onnx_metadata_props
from detecteur.model.file import METADATA_KEY, ModelFileError

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "int8"]
INT8_SUFFIX = ".int8.onnx"
REPORT_KEY = "detecteur_int8_report"
# The gates of issue 22: int8 is served by default only when it keeps the model's quality and is clearly faster.
MAX_AUC_DROP = 0.002
MAX_ECE_RISE = 0.005
MIN_SPEED_UP = 1.5
CALIBRATION_BATCH = 16
SPEED_BATCHES = (1, 32)


class QuantisationError(Exception):
    """The split, its crop files or the graph cannot be quantised as asked (a message for the user)."""


@dataclass(frozen=True)
class QualityFigures:
    roc_auc: float
    ece: float
    accuracy: float


@dataclass(frozen=True)
class Int8Report:
    """What `quantise_model` measured, in one run on one machine: fp32 against int8 on the test split."""

    model_sha256: str
    calibration_images: int
    test_images: int
    fp32: QualityFigures
    int8: QualityFigures
    forward_ms_p50: dict[str, dict[str, float]]  # {"fp32"|"int8": {"batch1": ms, "batch32": ms}}
    speed_up: dict[str, float]  # fp32 ms / int8 ms per batch size
    auc_drop: float
    ece_rise: float
    passed: bool
    reasons: list[str]  # why it did not pass (empty when it did)
    machine_note: str
    fp32_convolutions: int = 0  # how many of the first convolutions stayed fp32 (0 in reports before it was asked)


def int8_graph_path(model_path: Path) -> Path:
    """The int8 graph of a model file: beside it, `<model stem>.int8.onnx`."""
    return model_path.with_name(model_path.stem + INT8_SUFFIX)


def read_int8_report(graph: Path) -> tuple[Int8Report, str] | None:
    """(report, sha256 of the model file it was made from) of an int8 graph; None if it carries no report."""
    try:
        properties = onnx_metadata_props(graph)
    except (OSError, ValueError):
        return None
    if REPORT_KEY not in properties:
        return None
    data = json.loads(properties[REPORT_KEY])
    data["fp32"], data["int8"] = QualityFigures(**data["fp32"]), QualityFigures(**data["int8"])
    return Int8Report(**data), properties.get(SOURCE_SHA256_KEY, "")


def serving_graph(model_path: Path, fp32_graph: Path, precision: Precision) -> Path:
    """The graph the service runs: the int8 one beside the model file when `precision` is "int8", or "auto" and
    that graph passed its gates for this very model file; the fp32 graph otherwise."""
    if precision == "fp32":
        return fp32_graph
    candidate = int8_graph_path(model_path)
    found = read_int8_report(candidate) if candidate.is_file() else None
    model_sha256 = file_sha256(model_path)
    current = found is not None and found[1] == found[0].model_sha256 == model_sha256
    if precision == "int8":
        if not current:
            raise ModelFileError(
                f"DETECTEUR_PRECISION=int8 but there is no int8 graph of {model_path} at {candidate} made from this "
                "model file: run `detecteur quantise --model MODEL --split SPLIT`"
            )
        return candidate
    if current and found is not None and found[0].passed:
        log.info("serving the int8 graph %s (it passed its quality and speed gates)", candidate)
        return candidate
    return fp32_graph


class _Batches:
    """An ONNX Runtime `CalibrationDataReader` over a preprocessed N×C×H×W array."""

    def __init__(self, inputs: np.ndarray, batch: int) -> None:
        self.inputs, self.batch, self.position = inputs, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.inputs):
            return None
        chunk = self.inputs[self.position : self.position + self.batch]
        self.position += self.batch
        return {INPUT_NAME: chunk}

    def rewind(self) -> None:
        self.position = 0


def quantise_graph(
    fp32_graph: Path,
    calibration: np.ndarray,
    out: Path,
    keep_fp32: Sequence[str] = (),
    calibration_method: Literal["MinMax", "Percentile", "Entropy"] = "Percentile",
) -> Path:
    """Static QDQ int8 quantisation of `fp32_graph`, activation ranges calibrated on `calibration` (ONNX Runtime's
    `calibration_method`), with the fp32 graph's metadata carried over; the nodes named in `keep_fp32` stay fp32.
    Written atomically to `out`."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(fp32_graph), str(prepared), skip_symbolic_shape=True)
        quantised = Path(folder) / "int8.onnx"
        quantize_static(
            str(prepared),
            str(quantised),
            _Batches(calibration, even_batch(len(calibration))),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod[calibration_method],
            nodes_to_exclude=list(keep_fp32),
            extra_options={"CalibMaxIntermediateOutputs": _outputs_held(len(calibration))},
        )
        model = onnx.load(str(quantised))
        source = onnx.load(str(fp32_graph), load_external_data=False)
        del model.metadata_props[:]
        model.metadata_props.extend(source.metadata_props)
        with atomic_path(out) as temporary:
            onnx.save(model, str(temporary))
    return out


def first_convolutions(graph: Path, count: int) -> list[str]:
    """The names of the first `count` `Conv` nodes of `graph`, in graph order (the stem first)."""
    import onnx

    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    return [node.name for node in nodes if node.op_type == "Conv"][:count]


def even_batch(images: int) -> int:
    """The largest calibration batch up to `CALIBRATION_BATCH` that divides `images`: ORT 1.32's histogram
    calibrators (Percentile, Entropy) stack a fold's batches into one array and fail on a shorter last batch."""
    return max(size for size in range(1, min(images, CALIBRATION_BATCH) + 1) if images % size == 0)


def _outputs_held(images: int) -> int:
    """How many calibration batches' intermediate outputs to hold before folding them into the ranges (all of them
    would take GiBs). Not a divisor of the batch count: ORT 1.32 fails ("No data is collected") when the last fold
    leaves nothing behind."""
    batches = images // even_batch(images)
    return next(held for held in (4, 5, 3, 7, 11) if held > batches or batches % held)


def _attach_report(graph: Path, report: Int8Report) -> None:
    """Write `report` into the graph's metadata (with the model file's metadata and sha256 it already carries)."""
    import onnx

    model = onnx.load(str(graph))
    properties = {entry.key: entry.value for entry in model.metadata_props}
    if METADATA_KEY not in properties:
        raise QuantisationError(f"{graph} lost the model metadata while quantising")
    properties[REPORT_KEY] = json.dumps(asdict(report))
    del model.metadata_props[:]
    for key, value in properties.items():
        model.metadata_props.add(key=key, value=value)
    with atomic_path(graph) as temporary:
        onnx.save(model, str(temporary))
