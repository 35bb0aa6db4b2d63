"""Datasets as files on disk: manifests, the subject-grouped 80/10/10 split, datasets and loaders (augmentation:
`augment.py`; sampling weights: `sampling.py`).

A manifest is a CSV with one row per image (path, label, source, subject_id, phash). Paths are stored
relative to the CSV's own folder so a manifest keeps working from any clone that keeps the same layout.
The split is written once to disk and read back by every later run: no run re-draws it.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import imagehash
import numpy as np
import torch
from PIL import Image
from rich.progress import track
from sklearn.model_selection import StratifiedGroupKFold
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, WeightedRandomSampler

from detecteur.config import AUTHENTIC, SYNTHETIC, AugmentConfig
from detecteur.files import atomic_path
from detecteur.inputs.decode import IMAGE_SUFFIXES, ImageError, decode_image
from detecteur.inputs.faces import FaceBox, encode_face, native_face_crop
from detecteur.inputs.preprocess import (
    InputSpec,
)
from detecteur.training.augment import TrainingTransform
from detecteur.training.synthesis import self_blend, upsampling_trace

CLASS_FOLDERS = {"real": AUTHENTIC, "fake": SYNTHETIC}
SPLITS = ("train", "val", "test")
MANIFEST_FIELDS = ("path", "label", "source", "subject_id", "phash")
SPLIT_FIELDS = (*MANIFEST_FIELDS, "split")
# Perceptual-hash Hamming distance (of 64 bits) at or below which two images count as near-copies.
NEAR_DUPLICATE_DISTANCE = 6
# StratifiedGroupKFold with 10 folds: one fold test, one fold validation, eight folds training.
N_FOLDS = 10


class DataError(ValueError):
    """A dataset folder, manifest or split file that cannot be used as it is."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    label: int
    source: str
    subject_id: str
    phash: str
    split: str = ""


def open_image(path: Path) -> Image.Image:
    """RGB image from a file, upright per its EXIF orientation — decoded exactly as the service decodes an
    upload (`imaging.decode_image`), so training and serving see the same pixels. Raises `ImageError`."""
    return decode_image(path.read_bytes()).image


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_dataset(root: Path, source: str | None = None) -> list[ImageRecord]:
    """Records for `<root>/{real,fake}/*` (either folder may be absent, not both).

    None of our datasets carries identities, so each image starts as its own subject; near-duplicate
    merging (`merge_near_duplicates`) then joins near-copies into one group.
    """
    source = source or root.name
    records: list[ImageRecord] = []
    for folder, label in CLASS_FOLDERS.items():
        if (root / folder).is_dir():
            for path in _image_files(root / folder):
                records.append(ImageRecord(path, label, source, f"{source}/{folder}/{person_id(path.stem)}", ""))
    if not records:
        raise DataError(f"{root} has no images under real/ or fake/")
    return records


# Datasets that show one person in several files name the person in the file stem: the London set's
# `neutral_NNN_03` and `smiling_NNN_08` are person NNN (its PROVENANCE.md).
PERSON_IN_STEM = re.compile(r"^(?:neutral|smiling)_(\d+)_\d+$")


def person_id(stem: str) -> str:
    """The subject a file shows, from its stem: the person where the dataset names one, else the file itself."""
    match = PERSON_IN_STEM.match(stem)
    return f"person_{match.group(1)}" if match else stem


def perceptual_hash(path: Path) -> str:
    return str(imagehash.phash(open_image(path)))


def merge_near_duplicates(
    records: Sequence[ImageRecord], max_distance: int = NEAR_DUPLICATE_DISTANCE
) -> list[ImageRecord]:
    """Give near-identical images (phash distance ≤ `max_distance`) one subject_id, so no near-copy can
    sit on both sides of the split and inflate every figure. Union-find over all pairs, vectorised."""
    hashes = np.array([int(r.phash, 16) for r in records], dtype=np.uint64)
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    chunk = 512
    for start in range(0, len(hashes), chunk):
        block = hashes[start : start + chunk, None] ^ hashes[None, :]
        rows, cols = np.nonzero(np.bitwise_count(block) <= max_distance)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            i, j = start + row, col
            if i < j:
                root_i, root_j = find(i), find(j)
                if root_i != root_j:
                    parent[max(root_i, root_j)] = min(root_i, root_j)
    return [replace(r, subject_id=records[find(i)].subject_id) for i, r in enumerate(records)]


def build_manifest(roots: Iterable[Path], progress: bool = True) -> list[ImageRecord]:
    """Scan dataset folders, hash every image, merge near-duplicates (also across datasets)."""
    records = [record for root in roots for record in scan_dataset(root)]
    paths = track(records, description="hashing images") if progress else records
    hashed = [replace(record, phash=perceptual_hash(record.path)) for record in paths]
    return merge_near_duplicates(hashed)


FACE_LOG_FIELDS = ("source_path", "crop_path", "faces_found", "score", "x", "y", "width", "height")


def _encoded_crop(image: Image.Image, box: FaceBox | None, size: int | None) -> bytes:
    """The bytes a prepared crop file holds: the canonical JPEG at `size`, or (`size` None) the native crop as
    lossless PNG, so that its pixels stay exactly the source's."""
    if size is not None:
        return encode_face(image, box, size)
    buffer = io.BytesIO()
    native_face_crop(image, box).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def prepare_faces(roots: Iterable[Path], out_dir: Path, size: int | None, progress: bool = True) -> dict[str, int]:
    """Write the face crop of every image under `roots` to `out_dir/<source>/{real,fake}/`: the normalised
    crop at `size` (JPEG), or with `size` None the native crop at the image's own scale (PNG).

    The most confident face is kept; where none is found the whole image is used (as serving does) and the
    log `out_dir/faces.csv` says so. Already written crops are kept, so an interrupted run resumes.
    Returns counts: images, with a face, without.
    """
    from detecteur.inputs.faces import FaceFinder

    records = [record for root in roots for record in scan_dataset(root)]
    finder = FaceFinder()
    log_rows: list[dict[str, object]] = []
    counts = {"images": 0, "with_face": 0, "without_face": 0}
    try:
        for record in track(records, description="cropping faces") if progress else records:
            folder = "fake" if record.label == SYNTHETIC else "real"
            suffix = ".png" if size is None else ".jpg"
            crop_path = out_dir / record.source / folder / f"{record.path.stem}{suffix}"
            image = open_image(record.path)
            boxes = finder.detect(image)
            box = boxes[0] if boxes else None
            if not crop_path.exists():
                crop_path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(crop_path) as temporary:
                    temporary.write_bytes(_encoded_crop(image, box, size))
            counts["images"] += 1
            counts["with_face" if box else "without_face"] += 1
            log_rows.append(
                {
                    "source_path": str(record.path),
                    "crop_path": os.path.relpath(crop_path, out_dir),
                    "faces_found": len(boxes),
                    "score": f"{box.score:.3f}" if box else "",
                    "x": box.x if box else "",
                    "y": box.y if box else "",
                    "width": box.width if box else "",
                    "height": box.height if box else "",
                }
            )
    finally:
        finder.close()
    _atomic_write_csv(out_dir / "faces.csv", FACE_LOG_FIELDS, log_rows)
    return counts


def _atomic_write_csv(path: Path, fields: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    with atomic_path(path) as temporary, temporary.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_records(records: Sequence[ImageRecord], path: Path) -> None:
    """Write a manifest (or, when records carry a split, a split file) atomically."""
    fields = SPLIT_FIELDS if all(r.split for r in records) else MANIFEST_FIELDS
    base = path.parent.resolve()
    rows = []
    for r in records:
        row: dict[str, object] = {
            "path": os.path.relpath(r.path.resolve(), base),
            "label": r.label,
            "source": r.source,
            "subject_id": r.subject_id,
            "phash": r.phash,
        }
        if "split" in fields:
            row["split"] = r.split
        rows.append(row)
    _atomic_write_csv(path, fields, rows)


def read_records(path: Path) -> list[ImageRecord]:
    """Records of a manifest or split file; paths resolved against the file's folder."""
    if not path.is_file():
        raise DataError(f"no such manifest or split file: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANIFEST_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path} lacks columns {sorted(missing)}")
        records = []
        for line, row in enumerate(reader, start=2):
            if row["label"] not in ("0", "1"):
                raise DataError(f"{path}:{line}: label must be 0 or 1, got {row['label']!r}")
            split = row.get("split") or ""
            if split and split not in SPLITS:
                raise DataError(f"{path}:{line}: unknown split {split!r}")
            records.append(
                ImageRecord(
                    path=(path.parent / row["path"]).resolve(),
                    label=int(row["label"]),
                    source=row["source"],
                    subject_id=row["subject_id"],
                    phash=row["phash"],
                    split=split,
                )
            )
    if not records:
        raise DataError(f"{path} has no rows")
    return records


def assign_splits(records: Sequence[ImageRecord], seed: int = 0) -> list[ImageRecord]:
    """Subject-independent 80/10/10 split, stratified by source × label, deterministic for a seed.

    One subject (after near-duplicate merging) lands in exactly one split.
    """
    if len({r.subject_id for r in records}) < N_FOLDS:
        raise DataError(f"an 80/10/10 split needs at least {N_FOLDS} subjects; the manifest has fewer")
    strata = [f"{r.source}:{r.label}" for r in records]
    _, stratum_codes = np.unique(strata, return_inverse=True)
    groups = [r.subject_id for r in records]
    folds = np.empty(len(records), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(records)), stratum_codes, groups)):
        folds[held_out] = fold
    names = np.where(folds == 0, "test", np.where(folds == 1, "val", "train"))
    return [replace(r, split=str(name)) for r, name in zip(records, names, strict=True)]


def select_split(records: Sequence[ImageRecord], split: str) -> list[ImageRecord]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {SPLITS}")
    chosen = [r for r in records if r.split == split]
    if not chosen:
        raise DataError(f"the split file has no {split!r} rows")
    return chosen


def stratified_subset(records: Sequence[ImageRecord], limit: int | None, seed: int) -> list[ImageRecord]:
    """At most `limit` records keeping each source × label share (for reduced-size runs)."""
    if limit is None or limit >= len(records):
        return list(records)
    rng = random.Random(seed)
    by_stratum: dict[str, list[ImageRecord]] = {}
    for r in records:
        by_stratum.setdefault(f"{r.source}:{r.label}", []).append(r)
    chosen: list[ImageRecord] = []
    for key in sorted(by_stratum):
        members = by_stratum[key]
        share = max(1, round(limit * len(members) / len(records)))
        chosen.extend(rng.sample(members, min(share, len(members))))
    return sorted(chosen, key=lambda r: str(r.path))


class FaceDataset(Dataset[tuple[torch.Tensor, int]]):
    """(model input, label) per record; with `self_blend_probability`, that share of the real faces drawn becomes a
    self-blended fake (`synthesis.self_blend`) for that draw — for a source in `self_blend_by_source`, its own
    share instead; with `upsampling_trace_probability`, that share of the reals left becomes an upsampling-trace
    fake (`synthesis.upsampling_trace`)."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[[Image.Image], torch.Tensor],
        self_blend_probability: float = 0.0,
        self_blend_by_source: Mapping[str, float] | None = None,
        upsampling_trace_probability: float = 0.0,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.self_blend_probability = self_blend_probability
        self.self_blend_by_source = dict(self_blend_by_source or {})
        self.upsampling_trace_probability = upsampling_trace_probability

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        try:
            image = open_image(record.path)
        except ImageError as error:
            raise DataError(f"{record.path}: {error}") from error
        label = record.label
        blend_probability = self.self_blend_by_source.get(record.source, self.self_blend_probability)
        if label == AUTHENTIC and self._draws(blend_probability):
            image, label = self_blend(image, random.Random(random.getrandbits(64))), SYNTHETIC
        elif label == AUTHENTIC and self._draws(self.upsampling_trace_probability):
            image, label = upsampling_trace(image, random.Random(random.getrandbits(64))), SYNTHETIC
        return self.transform(image), label

    @staticmethod
    def _draws(probability: float) -> bool:
        """True with `probability`; no random number is used when it is 0, so a dataset without made fakes draws
        the same augmentation as before they existed."""
        return probability > 0 and random.random() < probability


def without_sources(records: Sequence[ImageRecord], sources: Iterable[str]) -> list[ImageRecord]:
    """The records of every source but `sources`; a name `<source>/fake` or `<source>/real` leaves out one class."""
    excluded = set(sources)
    return [
        r
        for r in records
        if r.source not in excluded and f"{r.source}/{'fake' if r.label == SYNTHETIC else 'real'}" not in excluded
    ]


def make_loader(
    records: Sequence[ImageRecord],
    spec: InputSpec,
    augment: AugmentConfig | None,
    batch_size: int,
    num_workers: int,
    seed: int,
    shuffle: bool,
    sample_weights: Sequence[float] | None = None,
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
    shard: tuple[int, int] | None = None,
    self_blend_probability: float = 0.0,
    self_blend_by_source: Mapping[str, float] | None = None,
    upsampling_trace_probability: float = 0.0,
) -> DataLoader[tuple[torch.Tensor, int]]:
    """Batches of (model input, label); `augment=None` gives the exact serving transform, and `transform`
    replaces both (evaluation under perturbations).

    With `sample_weights`, an epoch draws len(records) images with replacement in proportion to them.
    With `shard=(rank, world_size)` (data-parallel training), this process gets its 1/world_size of the epoch:
    a disjoint slice of the shuffled images, or its own share of the weighted draws; every process the same count.
    """
    transform = transform or TrainingTransform(spec, augment or AugmentConfig(enabled=False))
    rank, world_size = shard or (0, 1)
    dataset = FaceDataset(
        records, transform, self_blend_probability, self_blend_by_source, upsampling_trace_probability
    )
    # Distinct per process and per seed (the training loop passes one seed per epoch); `seed` itself on one process.
    generator = torch.Generator().manual_seed(seed * world_size + rank)
    sampler: Sampler[int] | None = None
    if sample_weights is not None:
        # Draws with replacement are independent, so each process drawing its share makes one epoch's draw.
        sampler = WeightedRandomSampler(
            list(sample_weights),
            num_samples=math.ceil(len(records) / world_size),
            replacement=True,
            generator=generator,
        )
    elif world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        generator=generator,
        persistent_workers=num_workers > 0,
        drop_last=False,
    )


def summarise(records: Sequence[ImageRecord]) -> dict[str, dict[str, int]]:
    """Counts per split × source × class, for the model file and the model card."""
    summary: dict[str, dict[str, int]] = {}
    for r in records:
        key = f"{r.source}/{'fake' if r.label == SYNTHETIC else 'real'}"
        summary.setdefault(r.split or "all", {}).setdefault(key, 0)
        summary[r.split or "all"][key] += 1
    return {split: dict(sorted(counts.items())) for split, counts in sorted(summary.items())}
