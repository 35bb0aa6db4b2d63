from __future__ import annotations

import io
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from detecteur.config import Settings
from detecteur.inference import scoring
from detecteur.inference.engine import Detector
from detecteur.inference.scoring import (
    SCORE_SCHEMA,
    Limits,
    RayOptions,
    ScoreStore,
    ScoringError,
    find_images,
    score_collection,
)
from detecteur.training.data import open_image
from tests.test_faces import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / Settings().model_path
LIMITS = Limits(max_bytes=Settings().max_upload_bytes, max_pixels=Settings().max_pixels)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(SHIPPED)


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """The sample faces in nested folders, plus a text file and a truncated JPEG."""
    root = tmp_path / "collection"
    for index, sample in enumerate(sorted(SAMPLES.glob("*.jpg"))):
        (root / f"batch{index % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(sample, root / f"batch{index % 2}" / sample.name)
    (root / "notes.jpg").write_text("not an image")
    whole = (SAMPLES / "stylegan-ffhq-real-00006.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 4])
    (root / "readme.txt").write_text("not an image suffix: not collected")
    return root


def read_rows(path: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(path).to_pylist()
    return rows


def test_find_images_walks_folders_by_suffix_and_expands_globs(collection: Path) -> None:
    found = find_images(str(collection))
    assert len(found) == 9 and all(Path(path).is_absolute() for path in found)
    assert not any(path.endswith("readme.txt") for path in found)
    assert find_images(str(collection / "batch0" / "*.jpg")) == [p for p in found if "/batch0/" in p]


def test_every_face_gets_a_row_with_the_services_verdict_and_broken_files_an_error_row(
    collection: Path, tmp_path: Path, detector: Detector
) -> None:
    out = tmp_path / "results.parquet"
    summary = score_collection(find_images(str(collection)), out, SHIPPED, LIMITS, batch_size=4, progress=False)
    assert (summary.images, summary.skipped, summary.errors) == (9, 0, 2)
    assert pq.read_schema(out).equals(SCORE_SCHEMA)
    rows = {Path(str(row["path"])).name: row for row in read_rows(out)}
    assert rows["notes.jpg"]["error"] is not None and str(rows["notes.jpg"]["error"]).startswith("unsupported_format")
    assert str(rows["truncated.jpg"]["error"]).startswith("corrupt_image")
    assert rows["notes.jpg"]["fake_probability"] is None
    for sample in SAMPLES.glob("*.jpg"):
        judged = detector.judge(open_image(sample))
        row = rows[sample.name]
        assert row["error"] is None and row["model_version"] == detector.metadata.version
        assert row["face_detected"] == judged.face_detected
        face = judged.faces[0]
        assert face.box is not None
        assert (row["box_x"], row["box_y"], row["box_width"], row["box_height"]) == (
            face.box.x,
            face.box.y,
            face.box.width,
            face.box.height,
        )
        assert row["fake_probability"] == pytest.approx(face.verdict.fake_probability, abs=1e-5)
        assert row["verdict"] == face.verdict.verdict


def test_a_second_run_scores_only_the_files_not_yet_in_the_output(collection: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    everything = find_images(str(collection))
    score_collection(everything[:4], out, SHIPPED, LIMITS, progress=False)
    first = read_rows(out)
    summary = score_collection(everything, out, SHIPPED, LIMITS, progress=False)
    assert (summary.images, summary.skipped) == (5, 4)
    rows = read_rows(out)
    assert sorted({str(row["path"]) for row in rows}) == everything
    assert len(rows) == len({str(row["path"]) for row in rows}) == 9  # one face each, none scored twice
    assert rows[: len(first)] == first
    assert score_collection(everything, out, SHIPPED, LIMITS, progress=False).images == 0


def test_an_interrupted_run_keeps_its_finished_batches(
    collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results.parquet"
    everything = find_images(str(collection))
    real_score_files = scoring.score_files
    calls = 0

    def interrupted_on_third_batch(*args: object, **kwargs: object) -> list[dict[str, object]]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real_score_files(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scoring, "score_files", interrupted_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        score_collection(everything, out, SHIPPED, LIMITS, batch_size=2, flush_every=2, progress=False)
    assert len(read_rows(out)) == 4
    assert not ScoreStore(out).parts_dir.exists()
    monkeypatch.setattr(scoring, "score_files", real_score_files)
    summary = score_collection(everything, out, SHIPPED, LIMITS, progress=False)
    assert (summary.images, summary.skipped) == (5, 4)


def test_parts_left_by_a_merge_cut_short_are_not_counted_twice(tmp_path: Path) -> None:
    store = ScoreStore(tmp_path / "results.parquet")
    row = {name: None for name in SCORE_SCHEMA.names} | {"path": "/a.jpg", "model_version": "1", "error": "x"}
    store.append([row])
    store.merge()
    store.append([row, row | {"path": "/b.jpg"}])  # as if the merge had replaced the output, then died
    store.merge()
    assert [r["path"] for r in read_rows(store.out)] == ["/a.jpg", "/b.jpg"]


def test_an_output_from_another_model_is_refused(collection: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    row = {name: None for name in SCORE_SCHEMA.names} | {"path": "/a.jpg", "model_version": "0.0.1-old"}
    pq.write_table(pa.Table.from_pylist([row], schema=SCORE_SCHEMA), out)
    with pytest.raises(ScoringError, match=r"0\.0\.1-old"):
        score_collection(find_images(str(collection)), out, SHIPPED, LIMITS, progress=False)


def test_no_images_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScoringError, match="no image files"):
        score_collection(find_images(str(tmp_path / "*.jpg")), tmp_path / "r.parquet", SHIPPED, LIMITS)


def variants(root: Path, count: int) -> list[str]:
    """`count` distinct images made from the samples: crops, flips, rescales and JPEG qualities."""
    generator = random.Random(0)
    samples = sorted(SAMPLES.glob("*.jpg"))
    root.mkdir(parents=True)
    for index in range(count):
        image = Image.open(samples[index % len(samples)]).convert("RGB")
        side = min(image.size)
        crop = generator.randint(int(side * 0.85), side)
        image = image.crop((0, 0, crop, crop)).resize((generator.randint(180, 320),) * 2)
        if generator.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=generator.randint(70, 95))
        (root / f"variant-{index:03d}.jpg").write_bytes(buffer.getvalue())
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return find_images(str(root))


@pytest.fixture
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_actors_score_like_the_single_process_path(tmp_path: Path, local_ray: None) -> None:
    paths = variants(tmp_path / "images", 30)
    single = tmp_path / "single.parquet"
    score_collection(paths, single, SHIPPED, LIMITS, progress=False)
    distributed = tmp_path / "ray.parquet"
    summary = score_collection(
        paths, distributed, SHIPPED, LIMITS, batch_size=4, ray=RayOptions(workers=2), progress=False
    )
    assert (summary.images, summary.errors) == (31, 1)

    def by_face(path: Path) -> dict[tuple[str, int | None], dict[str, object]]:
        return {(str(row["path"]), row["face_index"]): row for row in read_rows(path)}  # type: ignore[misc]

    expected, got = by_face(single), by_face(distributed)
    assert got.keys() == expected.keys()
    for key, row in got.items():
        reference = expected[key]
        assert {k: v for k, v in row.items() if k not in ("fake_probability", "confidence")} == {
            k: v for k, v in reference.items() if k not in ("fake_probability", "confidence")
        }
        if reference["fake_probability"] is not None:
            assert row["fake_probability"] == pytest.approx(reference["fake_probability"], abs=1e-4)
    assert score_collection(paths, distributed, SHIPPED, LIMITS, ray=RayOptions(workers=2), progress=False).images == 0


def test_the_score_command_writes_the_parquet_and_says_what_it_did(collection: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detecteur.cli import app

    out = tmp_path / "results.parquet"
    result = CliRunner().invoke(app, ["score", str(collection), "--out", str(out), "--model", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "scored 9 images" in result.output and "2 unreadable" in result.output
    assert len(read_rows(out)) == 9
    result = CliRunner().invoke(app, ["score", str(tmp_path / "nothing-*.jpg"), "--out", str(out)])
    assert result.exit_code == 2 and "no image files" in result.output
