from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detecteur.config import RUN_BEST_MODEL_FILE, RUN_CHECKPOINT_FILE, RUN_CONFIG_FILE, TrainConfig
from detecteur.model.networks import input_spec_for, read_metadata
from detecteur.training.data import make_loader, read_records, select_split
from detecteur.training.runs import RunError, read_epochs
from detecteur.training.train import train
from tests.conftest import toy_config

ROOT = Path(__file__).resolve().parents[1]


def as_toml(values: dict[str, object]) -> str:
    """A recipe as TOML (flat keys first, then one table per nested dict); None means "not set"."""

    def literal(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(literal(item) for item in value) + "]"
        return json.dumps(value)

    lines = [f"{key} = {literal(value)}" for key, value in values.items() if not isinstance(value, dict | type(None))]
    for key, value in values.items():
        if isinstance(value, dict):
            lines += [f"[{key}]"] + [f"{k} = {literal(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def test_ddp_under_torchrun_writes_the_same_run_files_as_one_process(toy_split: Path, tmp_path: Path) -> None:
    config = toy_config(epochs=1, max_train_images=64, max_eval_images=16)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(as_toml(config.model_dump(mode="json")))
    assert TrainConfig.from_toml(recipe) == config
    run_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "detecteur", "train", "--ddp", "--device", "cpu", "--config", str(recipe)]
    command += ["--split", str(toy_split), "--out", str(run_dir)]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=os.environ | {"GLOG_minloglevel": "2"}
    )
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-3000:]

    assert sorted(path.name for path in run_dir.iterdir()) == sorted(
        ["config.json", "metrics.jsonl", RUN_CHECKPOINT_FILE, RUN_BEST_MODEL_FILE]
    )
    description = json.loads((run_dir / RUN_CONFIG_FILE).read_text())
    assert description["processes"] == 2
    assert description["config"] == config.model_dump(mode="json")
    [epoch] = read_epochs(run_dir)  # written once, by the main process only
    assert epoch.epoch == 1 and 0.0 <= epoch.val_auc <= 1.0 and epoch.images_per_second

    assert read_metadata(run_dir / RUN_BEST_MODEL_FILE).metrics["epoch"] == 1
    checkpoint = torch.load(run_dir / RUN_CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["epoch"] == 1
    assert not any(key.startswith("module.") for key in checkpoint["model"])  # loadable without DDP


def test_ddp_outside_torchrun_is_a_clear_error(toy_split: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="torchrun"):
        train(toy_config(epochs=1), toy_split, tmp_path / "run", distributed_run=True)


def shard_paths(toy_split: Path, rank: int, weights: list[float] | None = None) -> list[str]:
    records = select_split(read_records(toy_split), "train")
    spec = input_spec_for("efficientnet_lite0", 4, 64)
    loader = make_loader(records, spec, None, 8, 0, seed=3, shuffle=True, sample_weights=weights, shard=(rank, 2))
    return [records[index].path.name for index in loader.sampler]  # type: ignore[attr-defined]


def test_each_process_trains_on_its_own_half_of_the_epoch(toy_split: Path) -> None:
    records = select_split(read_records(toy_split), "train")
    first, second = shard_paths(toy_split, 0), shard_paths(toy_split, 1)
    assert len(first) == len(second) == len(records) // 2
    assert not set(first) & set(second)
    assert set(first) | set(second) == {record.path.name for record in records}


def test_weighted_sampling_gives_each_process_its_own_draws(toy_split: Path) -> None:
    records = select_split(read_records(toy_split), "train")
    weights = [1.0] * len(records)
    first, second = shard_paths(toy_split, 0, weights), shard_paths(toy_split, 1, weights)
    assert len(first) == len(second) == len(records) // 2
    assert first != second
