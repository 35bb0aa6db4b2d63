"""ONNX Runtime's memory arena, three ways, on the served graph in one run: shrunk after every run (ORT's
`memory.enable_memory_arena_shrinkage`, the service's way until 0.9.0), kept, and kept with batches run in slices
of `MAX_WINDOWS_PER_RUN` (the service's way now) — ms a window at batch sizes 1–32, and the process's RSS after
each batch size on a kept arena (it holds the peak of every size it has run), measured before the other sessions
run. Random inputs: speed and memory do not
depend on the pixels.

    .venv/bin/python benchmarks/arena_slices.py

Writes benchmarks/results/arena_slices.json.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np
from benchlib import Record, cpu_cores, rss_mib

from detecteur.config import Settings
from detecteur.model.backends import OnnxRuntimeBackend
from detecteur.model.export import INPUT_NAME, OUTPUT_NAME, graph_for_serving
from detecteur.model.file import read_metadata
from detecteur.model.quantise import serving_graph
from detecteur.model.serving_session import MAX_WINDOWS_PER_RUN, serving_session

BATCHES = (1, 2, 4, 8, 16, 32)
REPEATS = 10


def ms_per_window(run: Any, batch: np.ndarray) -> float:
    run(batch)  # warm-up
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times) / len(batch), 2)


def main() -> None:
    import onnxruntime as ort

    model_path = Settings().model_path
    metadata = read_metadata(model_path)
    graph = serving_graph(model_path, graph_for_serving(model_path), Settings().precision)
    threads = cpu_cores()
    record = Record("arena_slices", model=str(model_path), graph=graph.name, threads=threads, repeats=REPEATS)
    size = metadata.input_size
    inputs = np.random.default_rng(0).random((max(BATCHES), metadata.in_chans, size, size), dtype=np.float32)

    # Memory first, while the kept session's arena is the only one that grows: its RSS after each batch size.
    kept = serving_session(graph, threads)
    rss_by_batch = {"0": rss_mib(os.getpid())}
    for batch_size in BATCHES:
        kept.run([OUTPUT_NAME], {INPUT_NAME: inputs[:batch_size]})
        rss_by_batch[str(batch_size)] = rss_mib(os.getpid())
    print(f"RSS (MiB) after the kept arena ran each batch size: {rss_by_batch}")

    shrinking = serving_session(graph, threads)
    shrink_options = ort.RunOptions()
    shrink_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    sliced = OnnxRuntimeBackend(graph, threads)
    by_batch = {}
    for batch_size in BATCHES:
        batch = inputs[:batch_size]
        by_batch[str(batch_size)] = row = {
            "shrunk": ms_per_window(lambda x: shrinking.run([OUTPUT_NAME], {INPUT_NAME: x}, shrink_options), batch),
            "sliced": ms_per_window(sliced.logits, batch),
            "kept": ms_per_window(lambda x: kept.run([OUTPUT_NAME], {INPUT_NAME: x}), batch),
        }
        print(f"batch {batch_size}, ms a window: {row}")
    results = {
        "max_windows_per_run": MAX_WINDOWS_PER_RUN,
        "rss_mib_after_kept_batch": rss_by_batch,
        "ms_per_window_by_batch": by_batch,
    }
    record.write(results)


if __name__ == "__main__":
    main()
