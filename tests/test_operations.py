"""Operations that lose nothing, on a real `detecteur serve` process: SIGKILL in the middle of writes loses no
committed case (SQLite and PostgreSQL); a model reload under concurrency 8 fails no request; SIGTERM drains."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from detecteur.cases.store import open_store
from detecteur.model.networks import build, save_model
from tests.service_process import Load, running_service, terminate
from tests.test_api import FACE
from tests.test_faces import SAMPLES
from tests.test_model import metadata_for

IMAGES = [path.read_bytes() for path in sorted(SAMPLES.glob("*.jpg"))]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ops-models")
    paths = []
    for version in ("ops-1", "ops-2"):
        path = folder / f"{version}.safetensors"
        save_model(
            build("efficientnet_lite0", 4, pretrained=False), metadata_for(framing="face_crop", version=version), path
        )
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize("synchronous_commit", ["true", "false"])
def test_sigkill_in_the_middle_of_writes_loses_no_committed_case(
    models: tuple[Path, Path], database_url: str, tmp_path: Path, synchronous_commit: str
) -> None:
    if synchronous_commit == "false" and not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    # With synchronous_commit off (CASES_SYNCHRONOUS_COMMIT=false) an answered case is committed, not yet flushed:
    # a SIGKILL of the service must still lose none of them.
    environment = {"database_url": database_url, "cases_synchronous_commit": synchronous_commit}
    with running_service(models[0], tmp_path, **environment) as service:
        load = Load(service.url, IMAGES, concurrency=8).start()
        load.wait_for(40)
        service.process.send_signal(signal.SIGKILL)  # mid-stream: 8 clients have requests in flight
        service.process.wait(timeout=30)
        result = load.stop()
    answered = result.answers
    assert len(answered) >= 40
    store = open_store(database_url)
    try:
        for answer in answered:  # every case the API answered with was committed before the answer left
            case = store.get(answer["case"]["id"])
            assert case is not None, f"case {answer['case']['id']} was answered but is gone"
            assert (case.verdict, case.fake_probability) == (answer["verdict"], answer["fake_probability"])
            assert case.response["faces"] == answer["faces"]
        assert store.count() >= len(answered)
        if store.dialect == "sqlite":
            with store.engine.connect() as connection:
                assert connection.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        ids = [case.id for case in store.list(limit=500).cases]
        assert len(ids) == len(set(ids)) == store.count()
    finally:
        store.close()


def test_a_model_reload_under_concurrency_8_fails_no_request(models: tuple[Path, Path], tmp_path: Path) -> None:
    first, second = models
    admin = {"X-Admin-Key": "ops-admin"}
    with running_service(first, tmp_path, admin_key="ops-admin") as service:
        load = Load(service.url, IMAGES, concurrency=8).start()
        load.wait_for(16)
        reloads = []
        for path in (second, first, second):
            answered_before = load.result.outcomes["ok"]
            reply = httpx.post(
                f"{service.url}/v1/admin/reload", json={"model_path": str(path)}, headers=admin, timeout=120
            )
            assert reply.status_code == 200, reply.text
            reloads.append(reply.json())
            load.wait_for(answered_before + 8)
        service.process.send_signal(signal.SIGHUP)  # reloads the configured file (the first) the same way
        deadline = time.monotonic() + 60
        while httpx.get(f"{service.url}/health").json()["model_version"] != "ops-1":
            assert time.monotonic() < deadline, service.output()
            time.sleep(0.1)
        load.wait_for(load.result.outcomes["ok"] + 8)
        result = load.stop()
    figures = {"answered": result.outcomes["ok"], "failed": result.failed, "reloads": len(reloads) + 1}
    print("reload under load:", json.dumps(figures))
    assert result.failed == 0, result.failures[:5]
    assert [reload["model_version"] for reload in reloads] == ["ops-2", "ops-1", "ops-2"]
    assert {answer["model_version"] for answer in result.answers} == {"ops-1", "ops-2"}


def test_sigterm_drains_health_first_and_every_accepted_request_is_answered(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    with running_service(models[0], tmp_path, drain_seconds="1") as service:
        load = Load(service.url, IMAGES, concurrency=8).start()
        load.wait_for(16)
        terminate(service)
        time.sleep(0.2)
        health = httpx.get(f"{service.url}/health", timeout=5)
        assert health.status_code == 503 and health.json()["status"] == "draining"
        refused = httpx.post(f"{service.url}/v1/predict", files={"file": ("f.jpg", FACE.read_bytes())}, timeout=5)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["code"] == "shutting_down"
        assert service.process.wait(timeout=60) == 0, service.output()
        result = load.stop()
    print("drain under load:", json.dumps(dict(result.outcomes)))
    assert result.failed == 0, result.failures[:5]
    assert result.outcomes["ok"] >= 16 and result.outcomes["refused"] == 8
    assert "drained" in service.output()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.url}/health", timeout=2)
