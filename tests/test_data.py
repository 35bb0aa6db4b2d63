from __future__ import annotations

import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detecteur.training.data import (
    DataError,
    ImageRecord,
    assign_splits,
    build_manifest,
    read_records,
    scan_dataset,
    select_split,
    stratified_subset,
    write_records,
)
from tests.conftest import SHARED_DATASETS
from tests.toy_data import make_toy_dataset


def synthetic_records(n_subjects: int, images_per_subject: int = 1, sources: int = 2) -> list[ImageRecord]:
    """Records without files, for split properties: label alternates, a few subjects have several images."""
    records = []
    for subject in range(n_subjects):
        source = f"source{subject % sources}"
        label = (subject // sources) % 2
        for image in range(images_per_subject if subject % 7 == 0 else 1):
            records.append(ImageRecord(Path(f"/x/{subject}_{image}.png"), label, source, f"s{subject}", "0" * 16))
    return records


def test_manifest_has_one_row_per_image_with_label_source_and_subject(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "toyset", per_class=5, size=32)
    records = scan_dataset(root)
    assert Counter(r.label for r in records) == {0: 5, 1: 5}
    assert {r.source for r in records} == {"toyset"}
    assert len({r.subject_id for r in records}) == 10


def test_manifest_round_trips_through_csv_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "toyset", per_class=10, size=32)
    records = assign_splits(build_manifest([root], progress=False), seed=0)
    write_records(records, tmp_path / "meta" / "split.csv")
    assert "../toyset/" in (tmp_path / "meta" / "split.csv").read_text()
    assert read_records(tmp_path / "meta" / "split.csv") == [
        ImageRecord(r.path.resolve(), r.label, r.source, r.subject_id, r.phash, r.split) for r in records
    ]


def test_near_duplicates_are_merged_into_one_subject_even_across_classes(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "toyset", per_class=4, size=64)
    original = Image.open(root / "real" / "real_0000.png")
    buffer = io.BytesIO()
    original.resize((60, 60)).save(buffer, format="JPEG", quality=70)
    Image.open(buffer).save(root / "fake" / "near_copy.png")
    records = build_manifest([root], progress=False)
    by_name = {r.path.stem: r for r in records}
    assert by_name["near_copy"].subject_id == by_name["real_0000"].subject_id
    assert len({r.subject_id for r in records}) == len(records) - 1


def test_split_never_puts_one_subject_in_two_splits() -> None:
    records = assign_splits(synthetic_records(600, images_per_subject=4), seed=0)
    splits_of_subject: dict[str, set[str]] = defaultdict(set)
    for r in records:
        splits_of_subject[r.subject_id].add(r.split)
    assert all(len(splits) == 1 for splits in splits_of_subject.values())


def test_split_is_80_10_10_with_class_balance_within_two_percent_per_source() -> None:
    records = assign_splits(synthetic_records(2000), seed=0)
    shares = Counter(r.split for r in records)
    assert shares["train"] / len(records) == pytest.approx(0.8, abs=0.02)
    assert shares["val"] / len(records) == pytest.approx(0.1, abs=0.02)
    assert shares["test"] / len(records) == pytest.approx(0.1, abs=0.02)
    for source in ("source0", "source1"):
        overall = np.mean([r.label for r in records if r.source == source])
        for split in ("train", "val", "test"):
            share = np.mean([r.label for r in records if r.source == source and r.split == split])
            assert share == pytest.approx(overall, abs=0.02), (source, split)


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one() -> None:
    records = synthetic_records(500)
    assert assign_splits(records, seed=3) == assign_splits(records, seed=3)
    assert assign_splits(records, seed=3) != assign_splits(records, seed=4)


def test_stratified_subset_keeps_every_source_and_class() -> None:
    records = assign_splits(synthetic_records(400), seed=0)
    subset = stratified_subset(records, 40, seed=0)
    assert len(subset) == 40
    assert Counter((r.source, r.label) for r in subset) == Counter(
        {("source0", 0): 10, ("source0", 1): 10, ("source1", 0): 10, ("source1", 1): 10}
    )


def test_bad_manifests_and_folders_fail_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        scan_dataset(tmp_path / "empty")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,source,subject_id,phash\na.png,2,s,s/a,0\n")
    with pytest.raises(DataError, match="label must be 0 or 1"):
        read_records(bad)
    bad.write_text("path,label\na.png,1\n")
    with pytest.raises(DataError, match="lacks columns"):
        read_records(bad)
    with pytest.raises(DataError, match="no such"):
        read_records(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="at least 10 subjects"):
        assign_splits(synthetic_records(9), seed=0)
    with pytest.raises(DataError, match="no 'val' rows"):
        select_split([ImageRecord(Path("a"), 0, "s", "s", "0", "train")], "val")


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets is absent")
def test_real_stylegan_ffhq_split_is_subject_independent_and_balanced() -> None:
    records = assign_splits(build_manifest([SHARED_DATASETS / "stylegan-ffhq"], progress=False), seed=0)
    assert len(records) == 1900
    subjects: dict[str, set[str]] = defaultdict(set)
    for r in records:
        subjects[r.subject_id].add(r.split)
    assert all(len(s) == 1 for s in subjects.values())
    for split in ("train", "val", "test"):
        labels = [r.label for r in records if r.split == split]
        assert np.mean(labels) == pytest.approx(0.5, abs=0.02)


def test_sharpness_balancing_leaves_sharpness_no_information_about_the_label() -> None:
    from sklearn.metrics import roc_auc_score

    from detecteur.training.sampling import sharpness_balancing_weights

    rng = np.random.default_rng(0)
    # Fakes sharper on average than reals: a shortcut with AUC well above chance.
    labels = np.r_[np.zeros(2000, dtype=int), np.ones(1000, dtype=int)]
    values = np.r_[rng.normal(-7.0, 1.0, 2000), rng.normal(-5.5, 1.0, 1000)]
    weights = sharpness_balancing_weights(labels.tolist(), values.tolist())
    assert roc_auc_score(labels, values) > 0.8
    assert roc_auc_score(labels, values, sample_weight=weights) == pytest.approx(0.5, abs=0.06)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum(), rel=0.1)


def _records(groups: dict[tuple[str, int], int]) -> list[ImageRecord]:
    return [
        ImageRecord(path=Path(f"{source}/{label}/{i}.jpg"), label=label, source=source, subject_id=str(i), phash="0")
        for (source, label), count in groups.items()
        for i in range(count)
    ]


def test_source_balancing_gives_every_source_and_class_the_same_share_of_draws() -> None:
    from detecteur.training.sampling import draw_shares, source_balancing_weights

    records = _records({("big", 0): 900, ("big", 1): 300, ("small", 0): 50, ("small", 1): 10})
    shares = draw_shares(records, source_balancing_weights(records))
    assert shares == pytest.approx({"big/fake": 0.25, "big/real": 0.25, "small/fake": 0.25, "small/real": 0.25})
    assert draw_shares(records, np.ones(len(records)))["small/fake"] == pytest.approx(10 / 1260, abs=1e-4)
    # A source given three shares is drawn three times as often as each other group, whatever its size.
    shares = draw_shares(records, source_balancing_weights(records, {"small": 3.0}))
    assert shares == pytest.approx({"big/fake": 0.125, "big/real": 0.125, "small/fake": 0.375, "small/real": 0.375})


def test_source_shares_need_source_balancing_and_positive_shares() -> None:
    from pydantic import ValidationError

    from detecteur.config import TrainConfig

    assert TrainConfig(balance_sources=True, source_shares={"taef2": 3}).source_shares == {"taef2": 3.0}
    with pytest.raises(ValidationError, match="balance_sources"):
        TrainConfig(source_shares={"taef2": 3})
    with pytest.raises(ValidationError, match="greater than 0"):
        TrainConfig(balance_sources=True, source_shares={"taef2": 0})


def test_look_balancing_draws_each_real_look_as_often_as_the_fakes_sharing_it() -> None:
    from detecteur.training.sampling import draw_shares, sampling_weights

    # FFHQ's reals share their look with three fake sources; LFW's with its own swaps; selfies with none.
    records = _records(
        {("ffhq", 0): 90, ("ffhq", 1): 90, ("tpdne", 1): 80, ("inswapper", 1): 15, ("lfw", 0): 60, ("lfw", 1): 60}
        | {("selfies", 0): 25}
    )
    looks = {"tpdne": "ffhq", "inswapper": "ffhq"}
    sharpness_values = [0.0] * len(records)
    shares = draw_shares(records, sampling_weights(records, sharpness_values, True, False, looks))
    ffhq_fakes = shares["ffhq/fake"] + shares["tpdne/fake"] + shares["inswapper/fake"]
    assert shares["ffhq/real"] == pytest.approx(ffhq_fakes)
    assert shares["lfw/real"] == pytest.approx(shares["lfw/fake"])
    assert shares["selfies/real"] == pytest.approx(shares["lfw/real"])
    # Balanced by source alone, FFHQ's look is drawn three times as a fake for once as a real.
    by_source = draw_shares(records, sampling_weights(records, sharpness_values, True, False))
    assert 3 * by_source["ffhq/real"] == pytest.approx(
        by_source["ffhq/fake"] + by_source["tpdne/fake"] + by_source["inswapper/fake"]
    )


def test_sharpness_balancing_on_top_of_source_balancing_still_leaves_sharpness_no_information() -> None:
    from sklearn.metrics import roc_auc_score

    from detecteur.training.sampling import draw_shares, sampling_weights

    rng = np.random.default_rng(0)
    # A large blurry real source and a small sharp fake one: sharpness is a shortcut, and the small fakes are rare.
    records = _records({("blurry", 0): 2000, ("sharp", 0): 300, ("sharp", 1): 700})
    values = np.r_[rng.normal(-7.0, 1.0, 2000), rng.normal(-5.5, 1.0, 300), rng.normal(-5.5, 1.0, 700)]
    labels = np.array([r.label for r in records])
    weights = sampling_weights(records, values.tolist(), balance_sources=True, balance_sharpness=True)
    assert roc_auc_score(labels, values) > 0.8
    assert roc_auc_score(labels, values, sample_weight=weights) == pytest.approx(0.5, abs=0.06)
    plain = sampling_weights(records, values.tolist(), balance_sources=False, balance_sharpness=True)
    # Within the sharp source the two classes overlap; source balancing lifts its reals' share of draws.
    assert draw_shares(records, weights)["sharp/real"] > draw_shares(records, plain)["sharp/real"]
    unweighted = sampling_weights(records, values.tolist(), balance_sources=False, balance_sharpness=False)
    assert np.all(unweighted == 1.0)


def test_a_blurred_image_is_less_sharp() -> None:
    from PIL import ImageFilter

    from detecteur.training.sampling import sharpness

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert sharpness(image.filter(ImageFilter.GaussianBlur(2))) < sharpness(image) - 1.0
