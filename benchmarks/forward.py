"""Model forward latency and throughput: torch eager vs torch channels-last vs ONNX Runtime, batch 1 and batch 32,
as ratios measured in the same run. Variants take turns in rounds so a
change in the machine's load hits them alike. Also checks ONNX Runtime against torch on the sample faces.

    .venv/bin/python benchmarks/forward.py [--model PATH]

Writes benchmarks/results/forward.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from benchlib import SAMPLES, Record, cpu_cores, percentiles
from PIL import Image

from detecteur.config import Settings
from detecteur.inference.engine import Detector
from detecteur.inputs.preprocess import preprocess
from detecteur.model.export import INPUT_NAME, OUTPUT_NAME, ensure_onnx, onnx_session
from detecteur.model.networks import load_model
from detecteur.model.probabilities import fake_probabilities

Runner = Callable[[torch.Tensor], object]


def sample_batch(detector: Detector, size: int) -> torch.Tensor:
    """`size` preprocessed face crops of the sample images (repeated), exactly as the service builds them."""
    crops = [
        crop
        for path in sorted(SAMPLES.glob("*.jpg"))
        for _, crop in detector.regions(Image.open(path).convert("RGB"))[0]
    ]
    tensors = [preprocess(crops[index % len(crops)], detector.metadata.input_spec) for index in range(size)]
    return torch.stack(tensors)


def runners(model_path: Path, threads: int) -> dict[str, Runner]:
    torch.set_num_threads(threads)
    eager, _ = load_model(model_path)
    channels_last, _ = load_model(model_path)
    channels_last = channels_last.to(memory_format=torch.channels_last)
    session = onnx_session(ensure_onnx(model_path), threads)

    def run_eager(batch: torch.Tensor) -> object:
        with torch.inference_mode():
            return eager(batch)

    def run_channels_last(batch: torch.Tensor) -> object:
        with torch.inference_mode():
            return channels_last(batch.contiguous(memory_format=torch.channels_last))

    def run_onnxruntime(batch: torch.Tensor) -> object:
        return session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})

    variants: dict[str, Runner] = {
        "torch_eager": run_eager,
        "torch_channels_last": run_channels_last,
        "onnxruntime": run_onnxruntime,
    }
    return variants


def measure(
    variants: dict[str, Runner], batch: torch.Tensor, rounds: int, per_round: int, round_budget_s: float
) -> dict[str, object]:
    """`rounds` turns per variant, each of `per_round` runs or `round_budget_s` seconds, whichever ends first
    (a variant that collapses under the machine's load must not stall the whole benchmark)."""
    timings: dict[str, list[float]] = {name: [] for name in variants}
    cpu_times: dict[str, list[float]] = {name: [] for name in variants}
    warm_up: dict[str, float] = {}
    for name, run in variants.items():
        started = time.perf_counter()
        run(batch)  # first call: lazy initialisation
        warm_up[name] = round(time.perf_counter() - started, 2)
        run(batch)
    for _ in range(rounds):
        for name, run in variants.items():
            round_started = time.perf_counter()
            for _ in range(per_round):
                started, cpu_started = time.perf_counter(), time.process_time()
                run(batch)
                timings[name].append((time.perf_counter() - started) * 1000)
                cpu_times[name].append((time.process_time() - cpu_started) * 1000)
                if time.perf_counter() - round_started > round_budget_s:
                    break
    size = batch.shape[0]
    results: dict[str, object] = {}
    for name, values in timings.items():
        p50 = float(np.percentile(values, 50))
        results[name] = {
            **percentiles(values, (50, 95)),
            "images_per_s": round(size * 1000 / p50, 1),
            "first_call_s": warm_up[name],
            # CPU time of the process per run: what the run costs whatever else the shared machine is doing.
            "cpu_ms_p50": round(float(np.percentile(cpu_times[name], 50)), 2),
            "runs": len(values),
        }
    eager_p50 = float(np.percentile(timings["torch_eager"], 50))
    results["speedup_vs_torch_eager"] = {
        name: round(eager_p50 / float(np.percentile(values, 50)), 2) for name, values in timings.items()
    }
    return results


def equivalence(model_path: Path, batch: torch.Tensor) -> dict[str, float]:
    """Max |torch − ONNX Runtime| on the calibrated fake probabilities and the logits of the sample faces."""
    model, metadata = load_model(model_path)
    session = onnx_session(ensure_onnx(model_path))
    with torch.inference_mode():
        torch_logits = model(batch).numpy()
    onnx_logits = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0])
    calibration = (metadata.temperature, metadata.logit_adjustment)
    return {
        "images": int(batch.shape[0]),
        "max_abs_diff_logits": float(np.abs(torch_logits - onnx_logits).max()),
        "max_abs_diff_fake_probability": float(
            np.abs(fake_probabilities(torch_logits, *calibration) - fake_probabilities(onnx_logits, *calibration)).max()
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    cores = cpu_cores()
    record = Record("forward", model=str(args.model), rounds=args.rounds)
    detector = Detector(args.model, backend="torch")
    batch32 = sample_batch(detector, 32)
    unique = sample_batch(detector, len(list(SAMPLES.glob("*.jpg"))))
    results: dict[str, object] = {"equivalence_on_samples": equivalence(args.model, unique)}
    print("torch vs onnxruntime on the sample faces:", results["equivalence_on_samples"])
    for threads in sorted({cores, 1}, reverse=True):
        variants = runners(args.model, threads)
        b1 = measure(variants, batch32[:1], rounds=args.rounds, per_round=20, round_budget_s=1.5)
        results[f"batch1_threads{threads}"] = b1
        print(f"batch 1, {threads} thread(s):", b1)
        if threads == cores:
            b32 = measure(variants, batch32, rounds=args.rounds, per_round=2, round_budget_s=3.0)
            results[f"batch32_threads{threads}"] = b32
            print(f"batch 32, {threads} thread(s):", b32)
    record.write(results)


if __name__ == "__main__":
    main()
