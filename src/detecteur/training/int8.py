"""Measuring an int8 graph before it may serve (`detecteur quantise`): calibrate ONNX Runtime's static quantiser
(`model.quantise.quantise_graph`) on validation faces of the model's split, then measure what int8 costs and buys on
the test split against the fp32 graph, in one run: ROC AUC, ECE (calibrated with the model file's own temperature),
and the forward pass at batch 1 and 32. The figures go into the int8 graph's metadata; the service reads only them
(`model.quantise.serving_graph`), never this module.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detecteur.config import CALIBRATION_IMAGES, FP32_CONVOLUTIONS
from detecteur.files import file_sha256
from detecteur.inputs.faces import framed_windows
from detecteur.inputs.preprocess import preprocess_array
from detecteur.model.export import INPUT_NAME, OUTPUT_NAME, graph_for_serving
from detecteur.model.file import ModelMetadata, read_metadata
from detecteur.model.probabilities import fake_probabilities
from detecteur.model.quantise import (
    MAX_AUC_DROP,
    MAX_ECE_RISE,
    MIN_SPEED_UP,
    Int8Report,
    QualityFigures,
    QuantisationError,
    _attach_report,
    first_convolutions,
    int8_graph_path,
    log,
    quantise_graph,
)
from detecteur.model.serving_session import serving_session
from detecteur.training.data import DataError, open_image, read_records
from detecteur.training.metrics import compute_metrics, expected_calibration_error


def model_inputs(paths: Sequence[Path], metadata: ModelMetadata) -> tuple[np.ndarray, list[int]]:
    """The preprocessed network inputs of face crop files, as the service makes them (`preprocess_array`), and how
    many windows each file gave: canonical crops are the model's input already (one window), native crops give the
    windows of the model's framing, whose logits the service averages."""
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


def _logits(session: Any, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
    chunks = [session.run([OUTPUT_NAME], {INPUT_NAME: inputs[i : i + batch]})[0] for i in range(0, len(inputs), batch)]
    return np.concatenate(chunks).astype(np.float64)


def _quality(logits: np.ndarray, labels: np.ndarray, metadata: ModelMetadata) -> QualityFigures:
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
    fp32_convolutions: int = FP32_CONVOLUTIONS,
) -> tuple[Path, Int8Report]:
    """Quantise `model_path`'s graph (its first `fp32_convolutions` convolutions kept fp32) calibrated on validation
    faces of `split`, measure it against fp32 on the test faces, and write it (figures in its metadata) to `out`
    (default: `int8_graph_path`)."""
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
    quantise_graph(fp32_graph, calibration, target, first_convolutions(fp32_graph, fp32_convolutions))

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
    report = _report(
        file_sha256(model_path), len(calibration_records), len(test), quality, speed, speed_up, fp32_convolutions
    )
    _attach_report(target, report)
    return target, report


def _report(
    model_sha256: str,
    calibration_images: int,
    test_images: int,
    quality: dict[str, QualityFigures],
    speed: dict[str, dict[str, float]],
    speed_up: dict[str, float],
    fp32_convolutions: int = 0,
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
        fp32_convolutions=fp32_convolutions,
    )
