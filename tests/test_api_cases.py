"""The cases routes and the model reload, through the real app, against SQLite and PostgreSQL (`database_url`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from detecteur.api.main import create_app
from detecteur.config import Settings
from detecteur.model.networks import build, save_model
from tests.test_api import FACE, OTHER_FACE, model_file, wait_until_ready
from tests.test_model import metadata_for

__all__ = ["model_file"]  # the module-scoped fixture, shared with test_api

KEYS = {"X-API-Key": "k-alice-secret"}


def settings_for(model_file: Path, database_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "model_path": model_file,
        "database_url": SecretStr(database_url),
        "api_keys": [SecretStr("alice:k-alice-secret"), SecretStr("unnamed-secret")],
        "admin_key": SecretStr("admin-secret"),
    }
    return Settings(**(base | overrides))


def wait_for_store(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/v1/cases", headers=KEYS).status_code != 200:
        assert time.monotonic() < deadline, client.get("/v1/cases", headers=KEYS).json()
        time.sleep(0.05)


@pytest.fixture
def client(model_file: Path, database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(model_file, database_url))) as test_client:
        wait_until_ready(test_client)
        wait_for_store(test_client)
        yield test_client


def judge(client: TestClient, path: Path = FACE, headers: dict[str, str] = KEYS, **params: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/predict", files={"file": (path.name, path.read_bytes())}, headers=headers, params=params
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def test_every_check_is_recorded_with_the_key_name_and_never_the_key(client: TestClient) -> None:
    result = judge(client)
    case_id = result["case"]["id"]
    assert result["case"]["seen_before"] is None
    case = client.get(f"/v1/cases/{case_id}", headers=KEYS).json()
    assert case["sha256"] == _sha(FACE)
    assert (case["size_bytes"], case["media_type"], case["kind"]) == (FACE.stat().st_size, "image/jpeg", "image")
    assert (case["verdict"], case["model_version"], case["api_key_name"]) == (result["verdict"], "api-test", "alice")
    assert case["response"]["faces"] == result["faces"]
    assert case["response"]["model_version"] == "api-test" and "threshold" in case["response"]
    assert not case["has_image"] and not case["has_thumbnail"]  # privacy: nothing of the image by default
    other = judge(client, OTHER_FACE, headers={"X-API-Key": "unnamed-secret"})
    assert client.get(f"/v1/cases/{other['case']['id']}", headers=KEYS).json()["api_key_name"] == "key-2"
    exported = client.get("/v1/cases/export", params={"format": "jsonl"}, headers=KEYS).text
    assert "secret" not in exported


def test_the_same_bytes_judged_again_say_when_and_what_before(client: TestClient) -> None:
    first = judge(client)
    client.patch(f"/v1/cases/{first['case']['id']}", json={"decision": "unsure"}, headers=KEYS)
    again = judge(client)
    seen = again["case"]["seen_before"]
    assert (seen["case_id"], seen["verdict"], seen["decision"], seen["times"]) == (
        first["case"]["id"],
        first["verdict"],
        "unsure",
        1,
    )
    listed = client.get("/v1/cases", params={"sha256": _sha(FACE)}, headers=KEYS).json()
    assert [case["id"] for case in listed["cases"]] == [again["case"]["id"], first["case"]["id"]]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_review_filter_page_export_and_erase(client: TestClient) -> None:
    ids = [judge(client, path)["case"]["id"] for path in (FACE, OTHER_FACE, FACE, OTHER_FACE)]
    reviewed = client.patch(
        f"/v1/cases/{ids[1]}", json={"decision": "confirmed_synthetic", "note": "GAN eyes"}, headers=KEYS
    )
    assert reviewed.status_code == 200
    assert (reviewed.json()["decision"], reviewed.json()["note"], reviewed.json()["decided_by"]) == (
        "confirmed_synthetic",
        "GAN eyes",
        "alice",
    )
    assert client.patch(f"/v1/cases/{ids[1]}", json={"decision": "maybe"}, headers=KEYS).status_code == 422
    assert client.patch(f"/v1/cases/{ids[1]}", json={"verdict": "authentic"}, headers=KEYS).status_code == 422
    assert client.patch("/v1/cases/999999", json={"note": "x"}, headers=KEYS).status_code == 404

    page = client.get("/v1/cases", params={"limit": 3}, headers=KEYS).json()
    rest = client.get("/v1/cases", params={"limit": 3, "cursor": page["next_cursor"]}, headers=KEYS).json()
    assert [case["id"] for case in page["cases"] + rest["cases"]] == sorted(ids, reverse=True)
    assert rest["next_cursor"] is None
    decided = client.get("/v1/cases", params={"decision": "confirmed_synthetic"}, headers=KEYS).json()
    assert [case["id"] for case in decided["cases"]] == [ids[1]]
    assert client.get("/v1/cases", params={"model_version": "other"}, headers=KEYS).json()["cases"] == []
    since = client.get("/v1/cases", params={"since": "2999-01-01T00:00:00Z"}, headers=KEYS).json()
    assert since["cases"] == []
    assert client.get("/v1/cases", params={"cursor": "nonsense"}, headers=KEYS).status_code == 422
    assert client.get("/v1/cases", params={"verdict": "fake"}, headers=KEYS).status_code == 422
    assert client.get("/v1/cases", headers={}).status_code == 401  # the cases need a key like predictions

    rows = list(csv.DictReader(io.StringIO(client.get("/v1/cases/export?format=csv", headers=KEYS).text)))
    assert [int(row["id"]) for row in rows] == sorted(ids, reverse=True)
    assert rows[2]["note"] == "GAN eyes"
    lines = client.get("/v1/cases/export?format=jsonl&decision=any", headers=KEYS).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [ids[1]]

    assert client.delete(f"/v1/cases/{ids[0]}", headers=KEYS).status_code == 204
    assert client.get(f"/v1/cases/{ids[0]}", headers=KEYS).status_code == 404
    assert client.delete(f"/v1/cases/{ids[0]}", headers=KEYS).status_code == 404


def test_images_and_thumbnails_are_kept_only_when_asked(model_file: Path, database_url: str) -> None:
    settings = settings_for(model_file, database_url, store_images=True, case_thumbnails=True)
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        wait_for_store(client)
        result = judge(client, explain=True)
        case_id = result["case"]["id"]
        image = client.get(f"/v1/cases/{case_id}/image", headers=KEYS)
        assert image.status_code == 200 and image.content == FACE.read_bytes()
        assert image.headers["content-type"] == "image/jpeg"
        thumbnail = client.get(f"/v1/cases/{case_id}/thumbnail", headers=KEYS)
        assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
        assert client.get(f"/v1/cases/{case_id}", headers=KEYS).json()["response"]["faces"][0]["heatmap_png"]
        client.patch(f"/v1/cases/{case_id}", json={"decision": "confirmed_authentic"}, headers=KEYS)
        archive = client.get("/v1/cases/export?format=zip", headers=KEYS)
        assert archive.status_code == 200 and archive.content[:2] == b"PK"
        assert client.delete(f"/v1/cases/{case_id}", headers=KEYS).status_code == 204
        assert client.get(f"/v1/cases/{case_id}/image", headers=KEYS).status_code == 404


def test_without_stored_images_the_evidence_drawn_on_the_face_is_not_kept(client: TestClient) -> None:
    result = judge(client, explain=True)
    assert result["faces"][0]["heatmap_png"]  # the caller gets it
    case = client.get(f"/v1/cases/{result['case']['id']}", headers=KEYS).json()
    assert case["response"]["faces"][0]["heatmap_png"] is None
    assert case["response"]["faces"][0]["fake_probability"] == result["faces"][0]["fake_probability"]
    assert client.get(f"/v1/cases/{result['case']['id']}/image", headers=KEYS).status_code == 404


def test_with_the_store_off_nothing_is_recorded(model_file: Path, tmp_path: Path) -> None:
    settings = Settings(model_path=model_file, cases=False, cases_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        assert (
            client.post("/v1/predict", files={"file": ("f.jpg", FACE.read_bytes())}).json()["results"][0]["case"]
            is None
        )
        assert client.get("/v1/cases").json()["error"]["code"] == "cases_off"
    assert not list(tmp_path.iterdir())


def test_an_unreachable_database_costs_the_record_not_the_answer(model_file: Path) -> None:
    settings = Settings(model_path=model_file, database_url=SecretStr("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        response = client.post("/v1/predict", files={"file": ("f.jpg", FACE.read_bytes())})
        assert response.status_code == 200 and response.json()["results"][0]["case"] is None
        assert client.get("/v1/cases").status_code == 503
        assert "detecteur_case_write_errors_total 1.0" in client.get("/metrics").text


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("second-model") / "model.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(framing="face_crop", version="v2"), path)
    return path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_admin_reload_checks_the_new_model_before_swapping_it_in(
    client: TestClient, second_model: Path, tmp_path: Path
) -> None:
    assert client.post("/v1/admin/reload", headers=KEYS).status_code == 403
    assert client.post("/v1/admin/reload", headers=KEYS | {"X-Admin-Key": "wrong"}).status_code == 403
    admin = KEYS | {"X-Admin-Key": "admin-secret"}
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(second_model.read_bytes()[:-100])
    refused = client.post("/v1/admin/reload", json={"model_path": str(damaged)}, headers=admin)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_model"
    assert client.get("/health").json()["model_version"] == "api-test"  # the old model still serves
    swapped = client.post("/v1/admin/reload", json={"model_path": str(second_model)}, headers=admin)
    assert swapped.status_code == 200, swapped.text
    assert (swapped.json()["previous_version"], swapped.json()["model_version"]) == ("api-test", "v2")
    assert client.get("/health").json()["model_version"] == "v2"
    assert judge(client)["case"] is not None
    assert client.get("/v1/cases", params={"model_version": "v2"}, headers=KEYS).json()["cases"]


def test_admin_reload_is_off_without_an_admin_key(model_file: Path, tmp_path: Path) -> None:
    with TestClient(create_app(Settings(model_path=model_file, cases_dir=tmp_path))) as client:
        wait_until_ready(client)
        assert client.post("/v1/admin/reload", headers={"X-Admin-Key": ""}).status_code == 404
