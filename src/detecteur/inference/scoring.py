"""Batch scoring of an image collection into a Parquet file with one row per judged face.

One function, `score_files`, judges a batch of files with `imaging.decode_image` and `engine.Detector`, exactly as
the service does. `score_collection` runs it in this process (the default) or as Ray Data actors — each loading the
model once — on a local Ray instance or an existing cluster. Either way the driver writes the results: finished
batches go to part files beside the output as they arrive, and are merged into the output at the end (or when the
run is interrupted), every write atomic. A second run over the same collection skips the files the output already
holds, so a killed run loses at most the batches in flight.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from detecteur.config import BackendName
from detecteur.files import atomic_path
from detecteur.inference.engine import Detector, Verdict
from detecteur.inputs.decode import IMAGE_SUFFIXES, ImageError
from detecteur.inputs.image_source import ImageLimits, read_image_file

if TYPE_CHECKING:
    from PIL import Image

    from detecteur.inputs.faces import FaceBox

console = Console(stderr=True)

# One row per judged face; an unreadable file gets one row with `error` set and no score. `face_index` counts the
# faces of one image (0 for the whole image when no face was found, `face_detected` false then).
SCORE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("face_index", pa.int32()),
        ("face_detected", pa.bool_()),
        ("box_x", pa.int32()),
        ("box_y", pa.int32()),
        ("box_width", pa.int32()),
        ("box_height", pa.int32()),
        ("fake_probability", pa.float64()),
        ("verdict", pa.string()),
        ("confidence", pa.float64()),
        ("model_version", pa.string()),
        ("error", pa.string()),
    ]
)

Row = dict[str, Any]


class ScoringError(RuntimeError):
    """A scoring run that cannot start as asked (no images, an output written by another model)."""


# The service's limits on one file, the same type `Detector.judge` decodes paths and bytes with.
Limits = ImageLimits


@dataclass(frozen=True)
class RayOptions:
    """Where to run the actors: `address` None starts a local Ray instance (unless one is already initialised in
    this process), "auto" joins the cluster this machine belongs to, "ray://host:10001" a remote one.
    `workers` defaults to one actor per CPU of the cluster."""

    address: str | None = None
    workers: int | None = None


@dataclass(frozen=True)
class ScoreSummary:
    images: int  # scored in this run
    skipped: int  # already in the output
    faces: int  # rows written in this run, error rows included
    errors: int  # files that could not be scored
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def find_images(source: str) -> list[str]:
    """Image files under a folder (recursively, by suffix), or the files a glob pattern matches (any suffix:
    the pattern is the caller's choice). Absolute paths, sorted: the output's key for resuming."""
    root = Path(source)
    if root.is_dir():
        found: Iterable[Path] = (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    else:
        found = (Path(match) for match in glob.glob(source, recursive=True))
    return sorted({str(path.absolute()) for path in found if path.is_file()})


def _error_row(path: str, model_version: str, message: str) -> Row:
    return {name: None for name in SCORE_SCHEMA.names} | {
        "path": path,
        "model_version": model_version,
        "error": message,
    }


def _face_row(path: str, model_version: str, index: int, box: FaceBox | None, detected: bool, verdict: Verdict) -> Row:
    return {
        "path": path,
        "face_index": index,
        "face_detected": detected,
        "box_x": box.x if box else None,
        "box_y": box.y if box else None,
        "box_width": box.width if box else None,
        "box_height": box.height if box else None,
        "fake_probability": verdict.fake_probability,
        "verdict": verdict.verdict,
        "confidence": verdict.confidence,
        "model_version": model_version,
        "error": None,
    }


def score_files(paths: Sequence[str], detector: Detector, limits: Limits) -> list[Row]:
    """Rows for a batch of files: every face of every image, the crops of the whole batch judged together.
    A file that cannot be read, decoded or searched for faces gets an error row; it never stops the batch."""
    version = detector.metadata.version
    rows: list[Row] = []
    pending: list[tuple[str, int, FaceBox | None, bool]] = []
    crops: list[Image.Image] = []
    for path in paths:
        try:
            regions, detected = detector.regions(read_image_file(path, limits))
        except ImageError as error:
            rows.append(_error_row(path, version, f"{error.code}: {error}"))
            continue
        except OSError as error:
            rows.append(_error_row(path, version, f"unreadable: {error}"))
            continue
        except Exception as error:  # one odd file must not end a job over a million: record it and go on
            rows.append(_error_row(path, version, f"{type(error).__name__}: {error}"))
            continue
        for index, (box, crop) in enumerate(regions):
            pending.append((path, index, box, detected))
            crops.append(crop)
    verdicts = detector.predict(crops) if crops else []
    rows.extend(
        _face_row(path, version, index, box, detected, verdict)
        for (path, index, box, detected), verdict in zip(pending, verdicts, strict=True)
    )
    return rows


class ScoreWorker:
    """A Ray Data actor: loads the model once from the bytes it is given (so that only the driver needs the model
    file), then scores batches of paths with `score_files`."""

    def __init__(self, model_bytes: bytes, device: str, batch_size: int, limits: Limits, threads: int) -> None:
        import torch

        # One actor per CPU: torch's default of one thread per core would oversubscribe the node.
        torch.set_num_threads(threads)
        self._model_file = tempfile.NamedTemporaryFile(suffix=".safetensors")  # noqa: SIM115 (lives with the actor)
        self._model_file.write(model_bytes)
        self._model_file.flush()
        self.detector = Detector(Path(self._model_file.name), device=device, batch_size=batch_size)
        self.limits = limits

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        rows = score_files([str(path) for path in batch["path"]], self.detector, self.limits)
        return {name: [row[name] for row in rows] for name in SCORE_SCHEMA.names}


class ScoreStore:
    """The output Parquet file, and the part files of a run not merged into it yet (`<out>.parts/`)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.parts_dir = out.with_name(out.name + ".parts")

    def _parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet")) if self.parts_dir.is_dir() else []

    def _read(self, columns: list[str] | None = None) -> list[pa.Table]:
        files = ([self.out] if self.out.is_file() else []) + self._parts()
        return [pq.read_table(path, columns=columns, schema=SCORE_SCHEMA) for path in files]

    def done(self) -> tuple[set[str], set[str]]:
        """Paths already scored, and the model versions that scored them."""
        tables = self._read(["path", "model_version"])
        paths = {path for table in tables for path in table.column("path").to_pylist()}
        versions = {version for table in tables for version in table.column("model_version").to_pylist()}
        return paths, versions

    def append(self, rows: list[Row]) -> None:
        if not rows:
            return
        index = len(self._parts())
        with atomic_path(self.parts_dir / f"part-{index:06d}.parquet") as temporary:
            pq.write_table(pa.Table.from_pylist(rows, schema=SCORE_SCHEMA), temporary)

    def merge(self) -> None:
        """Fold the parts into the output. Part rows for paths the output already holds are dropped: they are what
        remains of a merge that was interrupted after the output was replaced but before the parts were removed."""
        parts = self._parts()
        if not parts:
            shutil.rmtree(self.parts_dir, ignore_errors=True)
            return
        tables = []
        if self.out.is_file():
            existing = pq.read_table(self.out, schema=SCORE_SCHEMA)
            tables.append(existing)
            known = pa.array(sorted(set(existing.column("path").to_pylist())), type=pa.string())
        else:
            known = pa.array([], type=pa.string())
        for part in parts:
            table = pq.read_table(part, schema=SCORE_SCHEMA)
            tables.append(table.filter(pc.invert(pc.is_in(table.column("path"), value_set=known))))
        with atomic_path(self.out) as temporary:
            pq.write_table(pa.concat_tables(tables), temporary)
        shutil.rmtree(self.parts_dir)


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _local_batches(
    paths: Sequence[str],
    model_path: Path,
    device: str,
    batch_size: int,
    limits: Limits,
    backend: BackendName,
    onnx_path: Path | None = None,
) -> Iterator[list[Row]]:
    # One process scores at a time here: it gets every core.
    cores = len(os.sched_getaffinity(0))
    detector = Detector(
        model_path, device=device, batch_size=batch_size, backend=backend, onnx_path=onnx_path, threads=cores
    )
    for batch in _batches(paths, batch_size):
        yield score_files(batch, detector, limits)


def _ray_batches(
    paths: Sequence[str], model_path: Path, device: str, batch_size: int, limits: Limits, options: RayOptions
) -> Iterator[list[Row]]:
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(address=options.address, log_to_driver=False, include_dashboard=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows one bar for the whole run
    workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
    # Enough blocks that every actor gets work, not so many that scheduling costs more than it saves.
    blocks = min(len(paths), max(4 * workers, math.ceil(len(paths) / (8 * batch_size))))
    dataset = ray.data.from_items([{"path": path} for path in paths], override_num_blocks=blocks)
    scored = dataset.map_batches(
        ScoreWorker,
        fn_constructor_kwargs={
            "model_bytes": model_path.read_bytes(),
            "device": device,
            "batch_size": batch_size,
            "limits": limits,
            "threads": 1,
        },
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
        batch_format="numpy",
    )
    for table in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
        assert isinstance(table, pa.Table)
        yield table.to_pylist()


def score_collection(
    paths: Sequence[str],
    out: Path,
    model_path: Path,
    limits: Limits,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    ray: RayOptions | None = None,
    backend: BackendName = "torch",
    onnx_path: Path | None = None,
    flush_every: int = 1000,
    progress: bool = True,
) -> ScoreSummary:
    """Score every path not already in `out` and add the rows to `out`; returns what this run did.

    With `ray`, the batches run as Ray Data actors (`ScoreWorker`, torch with one thread each); the image files must
    be readable at the same paths on every node. Without it, `backend` runs the network (as in the service).
    Rows reach the output in batches of about `flush_every` images.
    """
    from detecteur.model.file import read_metadata

    if not paths:
        raise ScoringError("no image files to score")
    model_version = read_metadata(model_path).version
    store = ScoreStore(out)
    done, versions = store.done()
    if versions - {model_version}:
        raise ScoringError(
            f"{out} holds scores from model {', '.join(sorted(versions))}, not {model_version}: "
            "write this model's scores to another --out"
        )
    todo = [path for path in paths if path not in done]
    started = time.perf_counter()
    images = faces = errors = 0
    buffer: list[Row] = []
    buffered_images = 0
    columns = [
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} img/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    try:
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task("scoring", total=len(todo), rate=0.0)
            if todo:
                batches = (
                    _ray_batches(todo, model_path, device, batch_size, limits, ray)
                    if ray is not None
                    else _local_batches(todo, model_path, device, batch_size, limits, backend, onnx_path)
                )
                for rows in batches:
                    # Each image has exactly one row with face_index 0, or one error row: counting those stays
                    # right even if Ray splits one batch's rows over two blocks.
                    finished = sum(1 for row in rows if row["face_index"] in (0, None))
                    buffer.extend(rows)
                    buffered_images += finished
                    images += finished
                    faces += len(rows)
                    errors += sum(1 for row in rows if row["error"] is not None)
                    if buffered_images >= flush_every:
                        store.append(buffer)
                        buffer, buffered_images = [], 0
                    bar.update(task, advance=finished, rate=images / (time.perf_counter() - started))
    finally:
        # Interrupted or not, what was scored reaches the output.
        store.append(buffer)
        store.merge()
    return ScoreSummary(images, len(paths) - len(todo), faces, errors, time.perf_counter() - started)
