"""The generalisation pipeline (#20): native face crops, their windows, fakes made from reals, and the
leave-one-generator-out sweep on toy data."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detecteur.config import AUTHENTIC, SYNTHETIC, AugmentConfig, LogoConfig
from detecteur.inputs.faces import (
    FaceBox,
    canonical_face,
    encode_face,
    framed_windows,
    native_face_crop,
    normalise_face,
)
from detecteur.inputs.preprocess import model_windows
from detecteur.training import synthesis
from detecteur.training.data import (
    DataError,
    ImageRecord,
    TrainingTransform,
    assign_splits,
    build_manifest,
    person_id,
    read_records,
    without_sources,
    write_records,
)
from detecteur.training.logo import SHARED_FOLD, fold_config, run_logo, web_version
from detecteur.training.synthesis import TAEF2_DIR, Taef2, blend_into_real, jpeg_like, self_blend, upsampling_trace
from tests.conftest import toy_config
from tests.toy_data import make_toy_dataset


def _photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def test_native_crop_keeps_the_pixels_and_the_canonical_crop_is_unchanged() -> None:
    image = _photo((400, 300))
    box = FaceBox(150, 100, 100, 100, 0.9)
    crop = native_face_crop(image, box)
    left, top, right, bottom = box.square_crop(400, 300)
    assert crop.size == (right - left, bottom - top)
    assert np.array_equal(np.asarray(crop), np.asarray(image)[top:bottom, left:right])
    # The canonical crop of the native crop is byte for byte the prepared-file crop of earlier models.
    assert np.array_equal(np.asarray(canonical_face(crop, 224)), np.asarray(normalise_face(image, box, 224)))
    assert encode_face(image, box, 224)[:2] == b"\xff\xd8"


def test_model_windows_never_shrink_a_large_crop() -> None:
    large = _photo((300, 300))
    windows = model_windows(large, 224)
    assert len(windows) == 2
    assert all(window.size == (224, 224) for window in windows)
    # The centre window is the crop's own pixels, not a resampled copy.
    assert np.array_equal(np.asarray(windows[0]), np.asarray(large)[38:262, 38:262])
    small = _photo((150, 150))
    assert [w.size for w in model_windows(small, 224)] == [(224, 224)]
    assert [w.size for w in framed_windows(large, "face_crop", 224)] == [(224, 224)]
    assert framed_windows(large, "whole_image", 224)[0] is large


@pytest.mark.parametrize("side", [120, 224, 400])
def test_native_training_transform_gives_model_inputs_at_any_crop_size(side: int) -> None:
    spec = toy_config(input_size=64).model_copy()
    from detecteur.model.networks import input_spec_for

    input_spec = input_spec_for(spec.arch, 4, 64)
    augment = AugmentConfig(downscale_probability=1.0, jpeg_probability=1.0, jpeg_quality=(30, 100))
    random.seed(0)
    tensor = TrainingTransform(input_spec, augment, native=True)(_photo((side, side)))
    assert tuple(tensor.shape) == (4, 64, 64)
    served = TrainingTransform(input_spec, AugmentConfig(enabled=False), native=True)(_photo((side, side)))
    assert tuple(served.shape) == (4, 64, 64)


def test_self_blend_changes_the_face_and_leaves_the_border() -> None:
    image = _photo((128, 128), seed=3).filter(__import__("PIL.ImageFilter", fromlist=["x"]).GaussianBlur(2))
    blended = self_blend(image, random.Random(1))
    before, after = np.asarray(image, dtype=int), np.asarray(blended, dtype=int)
    assert blended.size == image.size
    assert np.abs(after - before)[40:90, 40:90].mean() > 0.5  # the face region is altered
    assert np.abs(after - before)[:4, :4].max() <= 1  # the corners are the original's
    assert np.array_equal(after, np.asarray(self_blend(image, random.Random(1)), dtype=int))  # seeded


def _nyquist_energy(image: Image.Image) -> float:
    """The spectrum's period-2 rows and columns against its mean: where a ×2 upsampling grid puts its energy."""
    grey = np.asarray(image.convert("L"), dtype=float)
    spectrum = np.abs(np.fft.fft2(grey - grey.mean()))
    height, width = grey.shape
    return float((spectrum[height // 2, :].mean() + spectrum[:, width // 2].mean()) / spectrum.mean())


def test_an_upsampling_trace_leaves_a_period_2_grid_on_a_smooth_face() -> None:
    image = _photo((96, 96), seed=4).filter(__import__("PIL.ImageFilter", fromlist=["x"]).GaussianBlur(2))
    traced = upsampling_trace(image, random.Random(2))
    assert traced.size == image.size
    assert _nyquist_energy(traced) > 3 * _nyquist_energy(image)
    # The picture itself survives: a trace, not a new image.
    assert np.abs(np.asarray(traced, dtype=int) - np.asarray(image, dtype=int)).mean() < 8
    assert np.array_equal(np.asarray(traced), np.asarray(upsampling_trace(image, random.Random(2))))  # seeded
    assert upsampling_trace(_photo((65, 63)), random.Random(0)).size == (64, 62)  # an odd row / column dropped


def test_upsampling_traces_turn_reals_not_blended_into_fakes(two_generator_split: Path) -> None:
    from detecteur.training.data import FaceDataset

    records = read_records(two_generator_split)
    reals = [r for r in records if r.label == AUTHENTIC][:4]
    fakes = [r for r in records if r.label == SYNTHETIC][:4]
    traced = FaceDataset(reals + fakes, lambda image: image, upsampling_trace_probability=1.0)
    assert [traced[i][1] for i in range(8)] == [SYNTHETIC] * 8
    assert traced[0][0].size[0] % 2 == 0
    untouched = FaceDataset(reals, lambda image: image)
    assert [untouched[i][1] for i in range(4)] == [AUTHENTIC] * 4


def test_reals_whose_look_no_fake_shares_are_found_per_fold(two_generator_split: Path) -> None:
    from detecteur.training.sampling import reals_without_look_alike_fakes

    records = read_records(two_generator_split)
    assert reals_without_look_alike_fakes(records, {}) == {"camera"}
    assert reals_without_look_alike_fakes(records, {"gen-a": "camera"}) == set()
    # Holding gen-a out leaves the camera look with no fake again.
    assert reals_without_look_alike_fakes(without_sources(records, ["gen-a/fake"]), {"gen-a": "camera"}) == {"camera"}


def test_self_blending_share_can_differ_per_source(two_generator_split: Path) -> None:
    from detecteur.training.data import FaceDataset

    reals = [r for r in read_records(two_generator_split) if r.label == AUTHENTIC][:6]
    as_other_source = [dataclasses.replace(r, source="other") for r in reals]
    dataset = FaceDataset(reals + as_other_source, lambda image: image, 0.0, {"camera": 1.0})
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == [SYNTHETIC] * 6 + [AUTHENTIC] * 6


def test_jpeg_like_reuses_the_references_tables(tmp_path: Path) -> None:
    reference_path = tmp_path / "ref.jpg"
    _photo((64, 64)).save(reference_path, format="JPEG", quality=60)
    with Image.open(reference_path) as reference:
        encoded = jpeg_like(_photo((64, 64), seed=5), reference)
        again_path = tmp_path / "again.jpg"
        encoded.save(again_path, format="JPEG", qtables=reference.quantization)
        assert encoded.size == (64, 64)
    png = tmp_path / "ref.png"
    _photo((64, 64)).save(png)
    with Image.open(png) as lossless:
        untouched = _photo((64, 64), seed=5)
        assert jpeg_like(untouched, lossless) is untouched


def test_a_blended_reconstruction_keeps_the_real_outside_the_face_and_the_reconstruction_inside() -> None:
    real, reconstruction = Image.new("RGB", (100, 100), (200, 40, 40)), Image.new("RGB", (100, 100), (40, 40, 200))
    blended = np.asarray(blend_into_real(real, reconstruction, random.Random(0)), dtype=int)
    assert tuple(blended[2, 2]) == (200, 40, 40)  # a corner: the real's own pixels
    assert np.abs(blended[53, 50] - (40, 40, 200)).max() <= 2  # the face's centre: the reconstruction's
    assert len({tuple(pixel) for pixel in blended.reshape(-1, 3)}) > 10  # a soft boundary between them


class _UnchangedReconstruction:
    def reconstruct(self, image: Image.Image) -> Image.Image:
        return image.convert("RGB")


def test_reconstructions_are_made_from_the_reals_of_the_split_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synthesis, "Taef2", _UnchangedReconstruction)
    (tmp_path / "faces.csv").write_text("crop_path,source_path\n")
    records = []
    for index, (split, label) in enumerate([("train", AUTHENTIC), ("val", AUTHENTIC), ("val", SYNTHETIC)] * 2):
        path = tmp_path / f"face{index}.png"
        _photo((32, 32), seed=index).save(path)
        records.append(ImageRecord(path, label, "toy", f"person{index}", "0" * 16, split))
    pairs = synthesis.reconstruct_reals(records, tmp_path, tmp_path / "taef2", per_source=5, split="val")
    assert sorted(real.path.name for real, _ in pairs) == ["face1.png", "face4.png"]  # the validation reals only
    assert all(file.is_file() for _, file in pairs)


@pytest.mark.realdata
def test_taef2_reconstructs_a_face_closely() -> None:
    if not TAEF2_DIR.is_dir():
        pytest.skip(f"{TAEF2_DIR} is absent")
    face_path = Path(__file__).parent / "data" / "samples" / "stylegan-ffhq-real-00006.jpg"
    with Image.open(face_path) as face:
        original = face.convert("RGB").crop((64, 64, 192, 192))
    reconstruction = Taef2().reconstruct(original)
    assert reconstruction.size == (128, 128)
    error = np.mean((np.asarray(original, dtype=float) - np.asarray(reconstruction, dtype=float)) ** 2)
    assert 10 * np.log10(255**2 / error) > 25  # same content; a wrong architecture gives ~17 dB


def test_person_id_groups_the_london_set_by_person() -> None:
    assert person_id("neutral_012_03") == person_id("smiling_012_08") == "person_012"
    assert person_id("canada_003f") == "canada_003f"


def test_web_version_is_deterministic_and_small() -> None:
    image = _photo((400, 400))
    first, second = web_version(image, "key"), web_version(image, "key")
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert 150 <= min(first.size) <= 230


@pytest.fixture(scope="module")
def two_generator_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy data with one real source and two fake-only "generators"."""
    root = tmp_path_factory.mktemp("logo")
    reals = make_toy_dataset(root / "camera", per_class=40, seed=1)
    for fake in (reals / "fake").iterdir():
        fake.unlink()
    (reals / "fake").rmdir()
    generators = []
    for index, name in enumerate(("gen-a", "gen-b")):
        folder = make_toy_dataset(root / name, per_class=30, seed=10 + index)
        for real in (folder / "real").iterdir():
            real.unlink()
        (folder / "real").rmdir()
        generators.append(folder)
    split = root / "split.csv"
    write_records(assign_splits(build_manifest([reals, *generators], progress=False), seed=0), split)
    return split


def test_without_sources_drops_a_source_or_one_class(two_generator_split: Path) -> None:
    records = read_records(two_generator_split)
    assert {r.source for r in without_sources(records, ["gen-a"])} == {"camera", "gen-b"}
    kept = without_sources(records, ["camera/real"])
    assert all(r.label == SYNTHETIC for r in kept)
    assert any(r.label == AUTHENTIC for r in records)


def test_logo_sweep_holds_each_generator_out_of_its_fold(two_generator_split: Path, tmp_path: Path) -> None:
    recipe = toy_config(
        framing="native_face_crop",
        crop_files="native",
        epochs=5,
        logo=LogoConfig(held_out=["gen-a", "gen-b"], epochs=1, max_train_images=None, max_eval_images=None),
    )
    # Only the generator's fakes leave the fold: a source's reals are camera photos and stay.
    assert fold_config(recipe, "gen-a").exclude_sources == ["gen-a/fake"]
    report = run_logo(recipe, "toy", two_generator_split, tmp_path / "runs", tmp_path / "report")
    assert [fold["held_out"] for fold in report["folds"]] == ["gen-a", "gen-b"]
    for fold in report["folds"]:
        assert fold["run"] == fold["held_out"] and fold["train_seconds"] > 0
        trained_on = json.loads((tmp_path / "runs" / fold["held_out"] / "config.json").read_text())["data_summary"]
        assert not any(
            group.startswith(f"{fold['held_out']}/fake") for split in ("train", "val") for group in trained_on[split]
        )
        for condition in ("stored", "web"):
            figures = fold["conditions"][condition]
            assert 0.0 <= figures["auc"] <= 1.0 and 0.0 <= figures["recall"] <= 1.0
            assert set(figures["fpr_by_real_source"]) == {"camera"}
            assert all(fold["held_out"] in path for path, _ in figures["worst_misses"])
            assert all("camera" in path for path, _ in figures["worst_false_positives"])
    written = json.loads((tmp_path / "report" / "logo.json").read_text())
    assert written["summary"]["web"]["worst_auc"] <= written["summary"]["web"]["mean_auc"]
    assert "gen-a" in (tmp_path / "report" / "logo.md").read_text()
    # A fold folder trained with other exclusions (an older protocol, another recipe) is refused, not reused.
    other = recipe.model_copy(update={"exclude_sources": ["gen-b/real"]})
    with pytest.raises(DataError, match="move that folder away"):
        run_logo(other, "toy", two_generator_split, tmp_path / "runs", tmp_path / "other-report")
    other_split = tmp_path / "other-split.csv"
    other_split.write_text(two_generator_split.read_text() + "\n")
    with pytest.raises(DataError, match=r"not on .*other-split\.csv"):
        run_logo(recipe, "toy", other_split, tmp_path / "runs", tmp_path / "other-report")


def test_a_recipe_trained_on_no_generator_is_one_model_scored_on_each(
    two_generator_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detecteur.training import logo

    references_computed = []
    compute_reference = logo.fold_reference

    def counted(*args: object, **kwargs: object) -> logo.FoldReference:
        references_computed.append(args)
        return compute_reference(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(logo, "fold_reference", counted)
    recipe = toy_config(
        framing="native_face_crop",
        crop_files="native",
        exclude_sources=["gen-a/fake", "gen-b/fake"],
        self_blend_probability=0.5,  # its only fakes are made from its reals
        logo=LogoConfig(held_out=["gen-a", "gen-b"], epochs=1, max_train_images=None, max_eval_images=None),
    )
    assert fold_config(recipe, "gen-a").exclude_sources == ["gen-a/fake", "gen-b/fake"]
    report = run_logo(recipe, "reals-only", two_generator_split, tmp_path / "runs", tmp_path / "report")
    assert [path.name for path in (tmp_path / "runs").iterdir()] == [SHARED_FOLD]
    assert [fold["held_out"] for fold in report["folds"]] == ["gen-a", "gen-b"]
    assert report["folds"][0]["threshold"] == report["folds"][1]["threshold"]  # one model, one threshold
    assert {fold["run"] for fold in report["folds"]} == {SHARED_FOLD}
    assert len(references_computed) == 1  # computed once for both generators
    assert all(fold["fakes"] == 30 for fold in report["folds"])  # each generator's own fakes were scored


def test_an_ensemble_of_fold_models_is_scored_as_a_fold_is(two_generator_split: Path, tmp_path: Path) -> None:
    from scripts.logo_ensemble import fold_folder

    from detecteur.model.networks import LogitAverage, build
    from detecteur.training.logo import fold_reference, score_fold, summarise_folds
    from tests.test_model import metadata_for

    metadata = metadata_for(framing="native_face_crop", version="fold")
    ensemble = LogitAverage([build("efficientnet_lite0", 4, pretrained=False) for _ in range(2)]).eval()
    reference = fold_reference(ensemble, metadata, two_generator_split, ["gen-a/fake"], None)
    fold = score_fold(ensemble, metadata, "gen-a", two_generator_split, reference)
    assert fold["held_out"] == "gen-a" and fold["fakes"] == 30
    assert set(fold["conditions"]) == {"stored", "web"}
    assert summarise_folds([{**fold, "val_auc": None}])["web"]["worst_fold"] == "gen-a"
    # A sweep's own fold model when it has one, else the one model of a recipe that trains on no generator.
    (tmp_path / "a" / "gen-a").mkdir(parents=True)
    (tmp_path / "a" / "gen-a" / "best.safetensors").write_bytes(b"")
    assert fold_folder(tmp_path / "a", "gen-a") == tmp_path / "a" / "gen-a"
    assert fold_folder(tmp_path / "a", "gen-b") == tmp_path / "a" / SHARED_FOLD


class _FixedMargin(torch.nn.Module):
    """A stand-in member whose fake-minus-real margin is the input's first value times `scale`."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        margin = inputs.flatten(1)[:, 0] * self.scale
        return torch.stack([torch.zeros_like(margin), margin], dim=1)


def test_largest_standardised_keeps_the_member_that_alone_fires() -> None:
    from detecteur.model.networks import LargestStandardised, LogitAverage

    # Member a's margins on reals: mean 0, std 1; member b's: mean 10, std 5 (a louder, shifted scale).
    ensemble = LargestStandardised([_FixedMargin(1.0), _FixedMargin(5.0)], [0.0, 10.0], [1.0, 5.0])
    inputs = torch.tensor([[3.0], [-1.0]])
    # a: 3σ and −1σ; b: (15 − 10)/5 = 1σ and (−5 − 10)/5 = −3σ. The larger of each row wins.
    assert torch.allclose(ensemble(inputs), torch.tensor([[0.0, 3.0], [0.0, -1.0]]))
    # A logit average of the same members reads the louder member's scale, not standard deviations.
    assert torch.allclose(LogitAverage([_FixedMargin(1.0), _FixedMargin(5.0)])(inputs)[:, 1], torch.tensor([9.0, -3.0]))
    with pytest.raises(ValueError, match="positive"):
        LargestStandardised([_FixedMargin(1.0), _FixedMargin(1.0)], [0.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="one mean and std each for 2 members"):
        LargestStandardised([_FixedMargin(1.0), _FixedMargin(1.0)], [0.0], [1.0])


def test_largest_standardised_members_are_standardised_on_the_validation_reals(two_generator_split: Path) -> None:
    from scripts.logo_ensemble import largest_standardised

    from detecteur.inference.windows import network_region_logits
    from detecteur.model.networks import build
    from detecteur.training.data import open_image
    from detecteur.training.logo import fold_validation_reals
    from tests.test_model import metadata_for

    metadata = metadata_for(framing="native_face_crop", version="fold")
    loaded = [(build("efficientnet_lite0", 4, pretrained=False), metadata) for _ in range(2)]
    reals = fold_validation_reals(read_records(two_generator_split), ["gen-a/fake"])
    assert reals and all(r.label == AUTHENTIC and r.split == "val" for r in reals)
    ensemble = largest_standardised(loaded, reals).eval()
    # On the reals it was standardised on, each member's margins have mean 0 and std 1.
    regions = [open_image(r.path) for r in reals]
    for index, (member, _) in enumerate(loaded):
        margins = network_region_logits(member, metadata.input_spec, metadata.framing, regions)
        standardised = (margins[:, 1] - margins[:, 0] - float(ensemble.reals_mean[index])) / float(
            ensemble.reals_std[index]
        )
        assert abs(standardised.mean()) < 1e-3 and abs(standardised.std() - 1) < 1e-3


def test_matched_weights_make_the_reals_look_like_the_fakes() -> None:
    from sklearn.metrics import roc_auc_score

    from detecteur.training.logo import matched_weights

    rng = np.random.default_rng(0)
    fake_sharpness = rng.normal(1.0, 0.5, 300)
    real_sharpness = rng.normal(0.0, 1.0, 900)  # reals blurrier: sharpness alone separates the classes
    labels = np.array([SYNTHETIC] * 300 + [AUTHENTIC] * 900)
    sharpness = np.concatenate([fake_sharpness, real_sharpness])
    sizes = rng.integers(150, 400, len(labels)).astype(float)
    assert roc_auc_score(labels, sharpness) > 0.75
    weights = matched_weights(labels, [sharpness, sizes], (5, 3))
    assert abs(roc_auc_score(labels, sharpness, sample_weight=weights) - 0.5) < 0.06
    assert np.all(weights[labels == SYNTHETIC] == 1.0)
    # Each cell's reals weigh as much in all as the cell's fakes.
    assert weights[labels == AUTHENTIC].sum() == pytest.approx(300)


def test_logo_gallery_draws_the_worst_failures(two_generator_split: Path, tmp_path: Path) -> None:
    from detecteur.training.plots import plot_logo_gallery

    records = [r for r in read_records(two_generator_split) if r.split == "test"][:2]
    folds = [
        {
            "held_out": "gen-a",
            "conditions": {
                "web": {
                    "worst_misses": [(str(records[0].path), 0.1)],
                    "worst_false_positives": [(str(records[1].path), 0.9)],
                }
            },
        }
    ]
    out = plot_logo_gallery({"folds": folds}, tmp_path / "gallery.png")
    with Image.open(out) as drawn:
        assert drawn.width > 100 and drawn.height > 100
