"""The ONNX Runtime session the service runs, lean in memory and quick to start (issue 22).

- **The optimised graph is cached.** ONNX Runtime optimises a graph every time a session opens it (fusions, layout
  changes), which costs start-up time and a transient copy of the weights that stays in the process's heap. The
  first session on a graph saves its optimised form in the cache (`optimised_graph_path`); later ones load that with
  optimisation off. The optimised form may hold instructions for this CPU (ORT's NCHWc layout), so its name carries
  the ORT version and a fingerprint of the CPU, and another machine optimises its own.
- **The memory arena is bounded by running at most `MAX_WINDOWS_PER_RUN` windows at once.** ORT's CPU arena keeps the
  peak of every batch size it has seen: with requests batched together (`batching`) that was ~900 MiB for a batch of
  32 of the 0.8.0 ensemble. Without the arena a batch of 8 runs ~1.5× slower (benchmarks/README.md), and shrinking it
  after each run (ORT's `memory.enable_memory_arena_shrinkage`, the earlier way) made every run of 4 windows or more
  allocate its activations again: 4.5–5.4 ms a window instead of 2.5–2.7 for 0.9.0 (one Lite0 at 224 px, 2 cores;
  `benchmarks/arena_slices.py`). So a larger batch runs in slices that reuse one bounded arena; `release_freed_memory`
  returns the C heap's free pages after start-up.

No torch here: the serving process must not load it (docs/lean-serving.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import os
import platform
from pathlib import Path
from typing import Any

from detecteur.files import atomic_path
from detecteur.model.export import default_cache_dir

log = logging.getLogger(__name__)

OPTIMISED_SUFFIX = ".optimised.onnx"


def cpu_fingerprint() -> str:
    """A short digest of the CPU model and its instruction-set flags (what an optimised graph may depend on)."""
    described = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                described += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return hashlib.sha256(described.encode()).hexdigest()[:12]


def optimised_graph_path(graph: Path, cache_dir: Path | None = None) -> Path:
    """Where the optimised form of `graph` is cached (default: `export.default_cache_dir()`, never beside a shipped
    model): named for the graph file (path, size, modification time), this ORT version and this CPU."""
    import onnxruntime as ort

    status = graph.stat()
    identity = f"{graph.resolve()}:{status.st_size}:{status.st_mtime_ns}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    folder = cache_dir or default_cache_dir()
    return folder / f"{graph.stem}-{digest}.ort{ort.__version__}-{cpu_fingerprint()}{OPTIMISED_SUFFIX}"


def _options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning off: on shared cores, threads busy-waiting for the next operator steal the CPU other requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def serving_session(graph: Path, threads: int = 1) -> Any:
    """A CPU session on `graph` with `threads` intra-op threads, from its cached optimised form when there is one
    (made now otherwise; a cache that cannot be written costs start-up time, not the service)."""
    import onnxruntime as ort

    optimised = optimised_graph_path(graph)
    options = _options(threads)
    if optimised.is_file():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(optimised), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # a damaged cache file is re-made below, whatever ORT raised
            log.warning("ignoring the optimised graph %s: %s", optimised, error)
            options = _options(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        with atomic_path(optimised) as temporary:
            options.optimized_model_filepath = str(temporary)
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    except OSError as error:
        log.warning("could not cache the optimised graph at %s (%s); optimising in memory", optimised, error)
        options = _options(threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    return session


# Windows one ONNX Runtime run takes at most; larger batches run in slices of this size. Measured for 0.9.0 on 2
# cores with the arena kept (benchmarks/arena_slices.py): 2.4 ms a window at batch 4, 2.7 at 8, 3.3 at 32, the arena
# holding ~39, 83 and 343 MiB for them; slices of 8 run a batch of 32 at 2.7 ms a window.
MAX_WINDOWS_PER_RUN = 8


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
# Blocks this large and larger are mapped and unmapped on their own, never carved from the heap. A served window is
# 0.8 MB of float32 and a batch of them up to `MAX_WINDOWS_PER_RUN` × that: below this, so they reuse heap pages.
# Mapped afresh, every new page of them faults on first touch (~700 faults, ~1.1 ms a window on 2 cores: the NumPy
# preprocessing of a window took 1.4 ms instead of 0.24; session 18, docs/lean-serving.md).
MMAP_THRESHOLD_BYTES = 8 << 20
# Free memory at the top of a heap is given back to the system only beyond this: at glibc's default (128 KiB) each
# freed window shrank the heap and the next one faulted its pages in again. Bounded, so the heap cannot keep a peak.
TRIM_THRESHOLD_BYTES = 32 << 20


def _libc() -> Any | None:
    if os.name != "posix":
        return None
    library = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(library) if library is not None else None
    except OSError:
        return None


def tune_allocator(arenas: int = 2) -> None:
    """Keep the C heap of a long-running server from growing with its thread count and batch sizes, without
    faulting in fresh pages for every window: at most `arenas` malloc arenas (glibc makes up to 8 per core, one per
    thread that allocates at once, and memory freed in one is never reused by another); fixed mmap and trim
    thresholds, so that blocks larger than a batch of windows (ORT's arena chunks) are mapped on their own and what
    they free goes back to the system (glibc otherwise raises the mmap threshold after the first large free, and the
    heap keeps the peak: the soak, `make soak`, grew 40 % after warm-up), while windows and their batches reuse the
    heap's pages. A no-op where there is no glibc."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt(M_ARENA_MAX, arenas)
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


def release_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`): after loading and warming up, the
    heap holds the transient copies made on the way. A no-op where there is no glibc."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
