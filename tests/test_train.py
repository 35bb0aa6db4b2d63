from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from detecteur.config import RUN_BEST_MODEL_FILE, RUN_CHECKPOINT_FILE, RUN_CONFIG_FILE, RUN_METRICS_FILE, TrainConfig
from detecteur.files import file_sha256
from detecteur.model.networks import load_model, read_metadata
from detecteur.training.runs import RunError, read_epochs
from detecteur.training.train import epoch_learning_rate, train
from tests.conftest import toy_config


def test_a_short_run_learns_the_toy_task_well_above_chance(toy_run: Path) -> None:
    epochs = read_epochs(toy_run)
    assert [e.epoch for e in epochs] == [1, 2]
    assert max(e.val_auc for e in epochs) > 0.85
    assert all(e.images_per_second and e.images_per_second > 0 for e in epochs)
    assert all(set(e.val_auc_by_source) == {"toyset"} for e in epochs)
    assert epochs[-1].val_auc_by_source["toyset"] == pytest.approx(epochs[-1].val_auc)


def test_a_run_writes_its_config_checkpoint_and_best_model(toy_run: Path, toy_split: Path) -> None:
    description = json.loads((toy_run / RUN_CONFIG_FILE).read_text())
    assert description["config"] == toy_config().model_dump(mode="json")
    assert description["split_file"] == str(toy_split)
    assert description["data_summary"]["train"] == {"toyset/fake": 64, "toyset/real": 64}
    metadata = read_metadata(toy_run / RUN_BEST_MODEL_FILE)
    assert metadata.arch == "efficientnet_lite0" and metadata.in_chans == 4 and metadata.input_size == 64
    assert metadata.metrics["val_auc_at_training"] == max(e.val_auc for e in read_epochs(toy_run))
    checkpoint = torch.load(toy_run / RUN_CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["epoch"] == 2


def test_a_run_directory_is_never_overwritten_without_resume(toy_run: Path, toy_split: Path) -> None:
    with pytest.raises(RunError, match="--resume"):
        train(toy_config(), toy_split, toy_run)


def test_resume_continues_after_the_last_finished_epoch(toy_run: Path, toy_split: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    shutil.copytree(toy_run, run_dir)
    # An epoch line past the checkpoint (the process died between the two writes) must be dropped.
    with (run_dir / RUN_METRICS_FILE).open("a") as metrics:
        metrics.write(read_epochs(toy_run)[-1].model_copy(update={"epoch": 3, "val_auc": 0.0}).to_json() + "\n")
    train(toy_config(epochs=3), toy_split, run_dir, resume=True)
    epochs = read_epochs(run_dir)
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert epochs[:2] == read_epochs(toy_run)
    assert epochs[2].val_auc > 0.5
    assert torch.load(run_dir / RUN_CHECKPOINT_FILE, weights_only=True)["epoch"] == 3


def test_resume_refuses_a_changed_recipe(toy_run: Path, toy_split: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    shutil.copytree(toy_run, run_dir)
    with pytest.raises(RunError, match=r"recipe changed.*lr"):
        train(toy_config(epochs=3, lr=0.1), toy_split, run_dir, resume=True)


def test_resume_accepts_a_run_started_before_a_setting_existed(toy_run: Path, toy_split: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    shutil.copytree(toy_run, run_dir)
    checkpoint = torch.load(run_dir / RUN_CHECKPOINT_FILE, weights_only=True)
    for added_later in ("lr_schedule", "min_lr", "init_weights"):
        del checkpoint["config"][added_later]
    torch.save(checkpoint, run_dir / RUN_CHECKPOINT_FILE)
    train(toy_config(epochs=3), toy_split, run_dir, resume=True)
    assert [e.epoch for e in read_epochs(run_dir)] == [1, 2, 3]


def test_the_cosine_schedule_falls_from_lr_towards_min_lr_and_constant_stays() -> None:
    cosine = toy_config(epochs=5, lr=1e-3, lr_schedule="cosine", min_lr=1e-5)
    rates = [epoch_learning_rate(cosine, epoch) for epoch in range(1, 6)]
    assert rates[0] == pytest.approx(1e-3)
    assert all(later < earlier for earlier, later in itertools.pairwise(rates))
    assert 1e-5 < rates[-1] < 0.15 * rates[0]
    constant = toy_config(epochs=5, lr=1e-3)
    assert {epoch_learning_rate(constant, epoch) for epoch in range(1, 6)} == {1e-3}


def test_a_cosine_run_logs_the_learning_rate_of_each_epoch(toy_split: Path, tmp_path: Path) -> None:
    config = toy_config(epochs=2, lr=1e-3, lr_schedule="cosine", min_lr=0.0, max_train_images=32)
    train(config, toy_split, tmp_path / "cosine")
    logged = [e.lr for e in read_epochs(tmp_path / "cosine")]
    assert logged == pytest.approx([1e-3, 5e-4])


def test_a_fine_tuning_stage_starts_from_the_saved_weights(toy_run: Path, toy_split: Path, tmp_path: Path) -> None:
    start = toy_run / RUN_BEST_MODEL_FILE
    # A learning rate this small barely moves the weights: what the stage ends with is what it started from.
    pin = file_sha256(start)
    config = toy_config(epochs=1, lr=1e-12, init_weights=start, init_weights_sha256=pin, max_train_images=32)
    train(config, toy_split, tmp_path / "stage")
    before, _ = load_model(start)
    after, _ = load_model(tmp_path / "stage" / RUN_BEST_MODEL_FILE)
    for (name, old), new in zip(before.named_parameters(), after.parameters(), strict=True):
        assert torch.allclose(old, new, atol=1e-6), name
    description = json.loads((tmp_path / "stage" / RUN_CONFIG_FILE).read_text())
    assert description["data_summary"]["init_weights_sha256"] == file_sha256(start)


def test_a_fine_tuning_stage_warns_when_it_would_replay_its_starting_models_crops(
    toy_run: Path, toy_split: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    start = toy_run / RUN_BEST_MODEL_FILE
    parent = read_metadata(start).training
    parent_seed, parent_epochs = parent["seed"], parent["epochs"]
    # Replays: the same seed, or one whose epoch seeds (seed + e) overlap the parent's; then the first without overlap.
    for seed in (parent_seed, parent_seed + parent_epochs - 1, parent_seed + parent_epochs):
        caplog.clear()
        config = toy_config(epochs=1, lr=1e-12, seed=seed, init_weights=start, max_train_images=16, max_eval_images=8)
        with caplog.at_level(logging.WARNING, logger="detecteur.training.train"):
            train(config, toy_split, tmp_path / f"stage-{seed}")
        replay_warnings = [record for record in caplog.records if "replays its training crops" in record.getMessage()]
        assert len(replay_warnings) == (1 if seed < parent_seed + parent_epochs else 0)


def test_a_fine_tuning_stage_refuses_weights_of_another_shape(toy_run: Path, toy_split: Path, tmp_path: Path) -> None:
    config = toy_config(epochs=1, in_chans=3, init_weights=toy_run / RUN_BEST_MODEL_FILE)
    with pytest.raises(RunError, match=r"init_weights .* is a model for"):
        train(config, toy_split, tmp_path / "stage")


def test_a_fine_tuning_stage_refuses_a_start_file_that_does_not_match_its_pin(
    toy_run: Path, toy_split: Path, tmp_path: Path
) -> None:
    config = toy_config(epochs=1, init_weights=toy_run / RUN_BEST_MODEL_FILE, init_weights_sha256="0" * 64)
    with pytest.raises(RunError, match=r"but the recipe pins 0{64}: not the file"):
        train(config, toy_split, tmp_path / "stage")


def test_a_fine_tuning_stage_names_a_missing_start_file(toy_split: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="init_weights: model file not found"):
        train(toy_config(epochs=1, init_weights=tmp_path / "absent.safetensors"), toy_split, tmp_path / "stage")


def test_resume_refuses_a_different_split(toy_run: Path, toy_split: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    shutil.copytree(toy_run, run_dir)
    other_split = tmp_path / "other.csv"
    other_split.write_text(toy_split.read_text().replace(",train\n", ",val\n", 1))
    with pytest.raises(RunError, match="differs from the split"):
        train(toy_config(epochs=3), other_split, run_dir, resume=True)


def test_sharpness_balancing_is_measured_and_recorded(toy_split: Path, tmp_path: Path) -> None:
    config = toy_config(epochs=1, balance_sharpness=True, max_train_images=64, max_eval_images=16)
    train(config, toy_split, tmp_path / "balanced")
    proof = json.loads((tmp_path / "balanced" / RUN_CONFIG_FILE).read_text())["data_summary"]["sharpness_shortcut"]
    assert abs(proof["sharpness_auc_weighted"] - 0.5) <= abs(proof["sharpness_auc_unweighted"] - 0.5) + 1e-9


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted([*CONFIGS.glob("*.toml"), *(CONFIGS / "archive").glob("*.toml")])
# How a recipe says where its released starting model is: `git show COMMIT:PATH > PATH` in a comment.
GIT_SHOW = re.compile(r"git show ([0-9a-f]{7,40}):(\S+) > (\S+)")


def _released_model(recipe: Path, config: TrainConfig, scratch: Path) -> Path:
    """The recipe's starting model as the commit its comment names holds it, written under `scratch`."""
    assert config.init_weights is not None
    where = GIT_SHOW.search(recipe.read_text())
    assert where is not None, f"{recipe.name} does not say which commit holds {config.init_weights}"
    commit, path, out = where.groups()
    assert Path(path) == config.init_weights == Path(out)
    blob = subprocess.run(
        ["git", "-C", str(CONFIGS), "cat-file", "blob", f"{commit}:{path}"], capture_output=True, check=False
    )
    if blob.returncode != 0:
        pytest.skip(f"needs the git history that holds {commit}:{path} (a full clone)")
    copy = scratch / config.init_weights.name
    copy.write_bytes(blob.stdout)
    return copy


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.relative_to(CONFIGS).as_posix())
def test_every_committed_recipe_parses_and_starts_from_a_pinned_model_that_fits_it(
    recipe: Path, tmp_path: Path
) -> None:
    config = TrainConfig.from_toml(recipe)
    if config.init_weights is None:
        return
    if config.init_weights.parts[0] == "runs":
        # A stage started from a run that was not shipped: the recipe of that run must be committed instead
        # (a LOGO sweep's runs are `runs/logo-<recipe>[-seed<N>]/<fold>/`).
        name = re.sub(r"^logo-|-seed\d+$", "", config.init_weights.parts[1]) + ".toml"
        parent = TrainConfig.from_toml(next(path for path in RECIPES if path.name == name))
        fits = (parent.arch, parent.in_chans, parent.input_size, parent.framing)
    else:
        # A released model: pinned by sha256; models/ holds only the served one, git history the others.
        assert config.init_weights_sha256 is not None, f"{recipe.name} does not pin {config.init_weights}"
        start = _released_model(recipe, config, tmp_path)
        assert file_sha256(start) == config.init_weights_sha256
        metadata = read_metadata(start)
        fits = (metadata.arch, metadata.in_chans, metadata.input_size, metadata.framing)
    assert fits == (config.arch, config.in_chans, config.input_size, config.framing)
