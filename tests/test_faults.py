"""Faults: training killed mid-epoch, a damaged or tampered model file, a missing one, a full disk while saving."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from typer.testing import CliRunner

from detecteur.api.main import create_app
from detecteur.cli import app as cli
from detecteur.config import RUN_CHECKPOINT_FILE, RUN_CONFIG_FILE, Settings
from detecteur.files import file_sha256
from detecteur.model.networks import METADATA_KEY, ModelFileError, build, load_model, save_model, verify_model_file
from detecteur.training.runs import read_epochs
from detecteur.training.train import train
from tests.conftest import toy_config
from tests.test_api import FACE
from tests.test_model import metadata_for

REPO = Path(__file__).resolve().parents[1]
# Two batches an epoch: enough to kill one halfway, cheap enough for every `make test`.
TINY = {"max_train_images": 32, "max_eval_images": 16, "mixed_precision": False}


def train_tiny(split: Path, run_dir: Path) -> None:
    torch.set_num_threads(1)
    train(toy_config(epochs=3, **TINY), split, run_dir)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """On a shared, busy machine two OpenMP threads spin-wait for each other: one thread trains the tiny runs here
    about eight times faster (measured under load 10 on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def checkpoint_epoch(run_dir: Path) -> int:
    state = torch.load(run_dir / RUN_CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    return int(state["epoch"])


# --- training killed -------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_torch_thread")
def test_training_killed_mid_epoch_resumes_to_the_end_on_the_same_split(toy_split: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    # A child process trains and dies like any process on SIGKILL. Spawned, not forked: by now the test process
    # runs threads (ONNX Runtime, mediapipe, the request batcher of earlier tests), and a fork taken while one of
    # them held a lock left the child waiting on it forever (seen once in a full run).
    trainer = multiprocessing.get_context("spawn").Process(target=train_tiny, args=(toy_split, run_dir))
    trainer.start()
    deadline = time.monotonic() + 180
    while not ((run_dir / RUN_CHECKPOINT_FILE).exists() and read_epochs(run_dir)):
        assert trainer.is_alive(), f"training failed (exit code {trainer.exitcode})"
        assert time.monotonic() < deadline, "epoch 1 never finished"
        time.sleep(0.02)
    # Half an epoch into epoch 2.
    time.sleep(read_epochs(run_dir)[0].seconds / 2)
    os.kill(trainer.pid, signal.SIGKILL)
    trainer.join(timeout=30)
    assert trainer.exitcode == -signal.SIGKILL
    killed_at = checkpoint_epoch(run_dir)  # the checkpoint on disk is whole: it loads
    assert killed_at < 3, "the run finished before it was killed; the test proved nothing"

    best = train(toy_config(epochs=3, **TINY), toy_split, run_dir, resume=True)

    assert [record.epoch for record in read_epochs(run_dir)] == [1, 2, 3]
    assert checkpoint_epoch(run_dir) == 3
    run_config = json.loads((run_dir / RUN_CONFIG_FILE).read_text())
    assert run_config["split_sha256"] == file_sha256(toy_split)
    model, metadata = load_model(best)
    assert metadata.weights_sha256 is not None and not model.training
    assert not list(run_dir.glob(".*.tmp")), "temporary files of the killed run were left behind"


# --- full disk -------------------------------------------------------------------------------------------------------


def full_disk_after(written: int) -> Any:
    """A writer that puts `written` bytes into the file and then fails as a full disk does."""

    def write(_: object, path: object, *args: object, **kwargs: object) -> None:
        Path(str(path)).write_bytes(b"\0" * written)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    return write


@pytest.mark.usefixtures("one_torch_thread")
def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
    toy_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "full-disk"
    real_save, saved = torch.save, []

    def disk_fills_after_the_first_checkpoint(payload: object, path: object, *args: object, **kwargs: object) -> None:
        if saved:
            full_disk_after(4096)(payload, path)
        real_save(payload, path, *args, **kwargs)  # type: ignore[arg-type]
        saved.append(Path(str(path)).read_bytes())

    monkeypatch.setattr(torch, "save", disk_fills_after_the_first_checkpoint)

    with pytest.raises(OSError) as raised:
        train(toy_config(epochs=2, **TINY), toy_split, run_dir)

    assert raised.value.errno == errno.ENOSPC
    assert (run_dir / RUN_CHECKPOINT_FILE).read_bytes() == saved[0]
    assert checkpoint_epoch(run_dir) == 1
    assert not list(run_dir.glob(".*.tmp"))


def test_a_full_disk_while_saving_a_model_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(version="old"), path)
    before = path.read_bytes()
    monkeypatch.setattr("detecteur.model.networks.save_file", full_disk_after(1000))

    with pytest.raises(OSError):
        save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(version="new"), path)

    assert path.read_bytes() == before
    assert load_model(path)[1].version == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


# --- damaged, tampered, old and missing model files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "model.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(framing="face_crop"), path)
    return path


def tampered_copy(model_file: Path, folder: Path) -> Path:
    """The model file with one byte of one weight changed: still a valid safetensors file."""
    data = bytearray(model_file.read_bytes())
    data[-1000] ^= 0x01
    tampered = folder / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    return tampered


def truncated_copy(model_file: Path, folder: Path) -> Path:
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    return truncated


def test_a_tampered_model_file_is_refused_because_its_weights_do_not_match_their_sha256(
    model_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelFileError, match="do not match the sha256"):
        load_model(tampered_copy(model_file, tmp_path))
    with pytest.raises(ModelFileError, match=r"truncated|not a readable"):
        load_model(truncated_copy(model_file, tmp_path))
    assert verify_model_file(model_file).weights_sha256


def test_a_model_file_written_before_the_sha256_existed_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.safetensors"
    state = {k: v.contiguous() for k, v in build("efficientnet_lite0", 4, pretrained=False).state_dict().items()}
    metadata = metadata_for().model_dump(mode="json", exclude={"weights_sha256"})
    save_file(state, str(path), metadata={METADATA_KEY: json.dumps(metadata)})

    assert load_model(path)[1].weights_sha256 is None


@pytest.mark.parametrize("damage", [tampered_copy, truncated_copy], ids=["tampered", "truncated"])
def test_the_service_refuses_to_start_on_a_damaged_model_file(model_file: Path, tmp_path: Path, damage: Any) -> None:
    with pytest.raises(ModelFileError), TestClient(create_app(Settings(model_path=damage(model_file, tmp_path)))):
        pass


def test_detecteur_serve_exits_with_a_clear_message_on_a_tampered_model(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(args))

    result = CliRunner().invoke(cli, ["serve", "--model", str(tampered_copy(model_file, tmp_path))])

    assert result.exit_code != 0 and not started
    message = " ".join(result.output.split())
    assert "refusing to serve" in message and "do not match the sha256" in message, result.output


def test_a_missing_model_file_gives_503_on_every_route_that_needs_it(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(model_path=tmp_path / "absent.safetensors"))) as client:
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/health").status_code == 503
        for route in ("/v1/predict", "/predict"):
            response = client.post(route, files={"file": ("a.jpg", FACE.read_bytes())})
            assert response.status_code == 503 and response.json()["error"]["code"] == "model_unavailable", route
        assert client.get("/v1/model").status_code == 503
