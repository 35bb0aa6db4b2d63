"""Static int8 quantisation of a model's ONNX graph (`detecteur quantise`), and the choice of graph the service runs.

`quantise_model` calibrates ONNX Runtime's static quantiser (QDQ, per-channel int8 weights, uint8 activations) on
validation faces of the model's split, then measures what int8 costs and buys on the test split, against the fp32
graph, in one run: ROC AUC, ECE (calibrated with the model file's own temperature), and the forward pass at batch 1
and 32. The int8 graph is written beside the model file (`int8_graph_path`) with the figures in its metadata; it
**passes** only if AUC is within `MAX_AUC_DROP`, ECE within `MAX_ECE_RISE` and the forward pass at least
`MIN_SPEED_UP` times faster. `serving_graph` serves it only when it passed and was made from this very model file
(`DETECTEUR_PRECISION=auto`, the default), or when asked outright (`int8`).

Quantising needs `onnx` (the `train` extra); choosing a graph to serve reads the file's metadata without it.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from detecteur.files import atomic_path, file_sha256
from detecteur.model.export import INPUT_NAME, OUTPUT_NAME, SOURCE_SHA256_KEY, graph_for_serving, onnx_metadata_props
from detecteur.model.file import METADATA_KEY, ModelFileError, ModelMetadata, read_metadata
from detecteur.model.probabilities import fake_probabilities
from detecteur.model.serving_session import serving_session

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "int8"]
INT8_SUFFIX = ".int8.onnx"
REPORT_KEY = "detecteur_int8_report"
# The gates of issue 22: int8 is served by default only when it keeps the model's quality and is clearly faster.
MAX_AUC_DROP = 0.002
MAX_ECE_RISE = 0.005
MIN_SPEED_UP = 1.5
CALIBRATION_IMAGES = 128
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


def model_inputs(paths: Sequence[Path], metadata: ModelMetadata) -> tuple[np.ndarray, list[int]]:
    """The preprocessed network inputs of face crop files, as the service makes them (`preprocess_array`), and how
    many windows each file gave: canonical crops are the model's input already (one window), native crops give the
    windows of the model's framing, whose logits the service averages."""
    from detecteur.inputs.faces import framed_windows
    from detecteur.inputs.preprocess import preprocess_array
    from detecteur.training.data import open_image

    framing = metadata.framing if metadata.framing == "native_face_crop" else "whole_image"
    inputs, counts = [], []
    for path in paths:
        windows = framed_windows(open_image(path), framing, metadata.input_size)
        inputs += [preprocess_array(window, metadata.input_spec) for window in windows]
        counts.append(len(windows))
    return np.stack(inputs), counts


def _region_logits(window_logits: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    ends = np.cumsum(counts)
    return np.stack([window_logits[end - count : end].mean(axis=0) for count, end in zip(counts, ends, strict=True)])


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


def quantise_graph(fp32_graph: Path, calibration: np.ndarray, out: Path) -> Path:
    """Static QDQ int8 quantisation of `fp32_graph`, activation ranges calibrated on `calibration` (MinMax), with
    the fp32 graph's metadata carried over. Written atomically to `out`."""
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
            _Batches(calibration, CALIBRATION_BATCH),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibMaxIntermediateOutputs": _outputs_held(len(calibration))},
        )
        model = onnx.load(str(quantised))
        source = onnx.load(str(fp32_graph), load_external_data=False)
        del model.metadata_props[:]
        model.metadata_props.extend(source.metadata_props)
        with atomic_path(out) as temporary:
            onnx.save(model, str(temporary))
    return out


def _outputs_held(images: int) -> int:
    """How many calibration batches' intermediate outputs to hold before folding them into the ranges (all of them
    would take GiBs). Not a divisor of the batch count: ORT 1.32 fails ("No data is collected") when the last fold
    leaves nothing behind."""
    batches = -(-images // CALIBRATION_BATCH)
    return next(held for held in (4, 5, 3, 7, 11) if held > batches or batches % held)


def _logits(session: Any, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
    chunks = [session.run([OUTPUT_NAME], {INPUT_NAME: inputs[i : i + batch]})[0] for i in range(0, len(inputs), batch)]
    return np.concatenate(chunks).astype(np.float64)


def _quality(logits: np.ndarray, labels: np.ndarray, metadata: ModelMetadata) -> QualityFigures:
    # Measuring is the `quantise` command's work, never the server's: training's metrics load here only.
    from detecteur.training.metrics import compute_metrics, expected_calibration_error

    probabilities = fake_probabilities(logits, metadata.temperature, metadata.logit_adjustment)
    metrics = compute_metrics(labels, probabilities, metadata.threshold)
    return QualityFigures(
        round(float(metrics["roc_auc"]), 5),
        round(float(expected_calibration_error(labels, probabilities)), 5),
        round(float(metrics["accuracy"]), 5),
    )


def forward_p50_ms(
    sessions: dict[str, Any], inputs: np.ndarray, repeats: dict[int, int]
) -> dict[str, dict[str, float]]:
    """p50 forward time of each session at each batch size, the sessions taking turns (a busy moment of the shared
    machine falls on both)."""
    times: dict[str, dict[int, list[float]]] = {name: {size: [] for size in repeats} for name in sessions}
    for size, count in repeats.items():
        batch = np.ascontiguousarray(np.resize(inputs, (size, *inputs.shape[1:])))
        for session in sessions.values():
            session.run([OUTPUT_NAME], {INPUT_NAME: batch})  # warm-up
        for _ in range(count):
            for name, session in sessions.items():
                started = time.perf_counter()
                session.run([OUTPUT_NAME], {INPUT_NAME: batch})
                times[name][size].append((time.perf_counter() - started) * 1000)
    return {
        name: {f"batch{size}": round(statistics.median(values), 2) for size, values in by_size.items()}
        for name, by_size in times.items()
    }


def quantise_model(
    model_path: Path,
    split: Path,
    out: Path | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    max_test_images: int | None = None,
    threads: int = 2,
    say: Callable[[str], None] = log.info,
) -> tuple[Path, Int8Report]:
    """Quantise `model_path`'s graph calibrated on validation faces of `split`, measure it against fp32 on the
    test faces, and write it (figures in its metadata) to `out` (default: `int8_graph_path`)."""
    from detecteur.training.data import DataError, read_records

    metadata = read_metadata(model_path)
    try:
        records = read_records(split)
    except DataError as error:
        raise QuantisationError(str(error)) from error
    validation = [record for record in records if record.split == "val"]
    test = [record for record in records if record.split == "test"][:max_test_images]
    if not validation or not test:
        raise QuantisationError(f"{split} needs both a val and a test split (has {len(validation)} / {len(test)})")
    missing = [record.path for record in validation + test if not record.path.is_file()]
    if missing:
        raise QuantisationError(
            f"{len(missing)} crop files of {split} are missing (first: {missing[0]}): make them with "
            "`detecteur data faces` (docs/training.md)"
        )
    step = max(1, len(validation) // calibration_images)
    calibration_records = validation[::step][:calibration_images]  # spread over the file: every source
    fp32_graph = graph_for_serving(model_path)
    target = out or int8_graph_path(model_path)
    say(f"calibrating on {len(calibration_records)} validation faces")
    calibration, _ = model_inputs([record.path for record in calibration_records], metadata)
    quantise_graph(fp32_graph, calibration, target)

    say(f"scoring {len(test)} test faces with fp32 and int8")
    test_inputs, counts = model_inputs([record.path for record in test], metadata)
    labels = np.array([record.label for record in test], dtype=np.int64)
    sessions = {"fp32": serving_session(fp32_graph, threads), "int8": serving_session(target, threads)}
    quality = {
        name: _quality(_region_logits(_logits(session, test_inputs), counts), labels, metadata)
        for name, session in sessions.items()
    }
    say("timing the forward pass (batch 1 and 32, taking turns)")
    speed = forward_p50_ms(sessions, test_inputs, {1: 30, 32: 3})
    speed_up = {key: round(speed["fp32"][key] / speed["int8"][key], 3) for key in speed["fp32"]}
    report = _report(file_sha256(model_path), len(calibration_records), len(test), quality, speed, speed_up)
    _attach_report(target, report)
    return target, report


def _report(
    model_sha256: str,
    calibration_images: int,
    test_images: int,
    quality: dict[str, QualityFigures],
    speed: dict[str, dict[str, float]],
    speed_up: dict[str, float],
) -> Int8Report:
    fp32, int8 = quality["fp32"], quality["int8"]
    auc_drop, ece_rise = round(fp32.roc_auc - int8.roc_auc, 5), round(int8.ece - fp32.ece, 5)
    reasons = []
    if auc_drop > MAX_AUC_DROP:
        reasons.append(f"test AUC drops by {auc_drop:.4f} (> {MAX_AUC_DROP})")
    if ece_rise > MAX_ECE_RISE:
        reasons.append(f"test ECE rises by {ece_rise:.4f} (> {MAX_ECE_RISE})")
    if min(speed_up.values()) < MIN_SPEED_UP:
        reasons.append(f"forward speed-up {min(speed_up.values()):.2f}× (< {MIN_SPEED_UP}×)")
    return Int8Report(
        model_sha256=model_sha256,
        calibration_images=calibration_images,
        test_images=test_images,
        fp32=fp32,
        int8=int8,
        forward_ms_p50=speed,
        speed_up=speed_up,
        auc_drop=auc_drop,
        ece_rise=ece_rise,
        passed=not reasons,
        reasons=reasons,
        machine_note="measured in one run on a machine shared with other jobs: the speed-up is the figure to read",
    )


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
