from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from detecteur.api.main import create_app
from detecteur.config import Settings
from detecteur.inference.engine import Detector

INDEX = "<!DOCTYPE html><html><body>Détecteur dashboard</body></html>"


def no_model(settings: Settings) -> Detector:
    raise OSError("no model in the dashboard tests")


@pytest.fixture
def dashboard_dir(tmp_path: Path) -> Path:
    """A stand-in for `frontend/out`, with files named like API routes to prove the routes win."""
    out = tmp_path / "out"
    (out / "_next" / "static").mkdir(parents=True)
    (out / "index.html").write_text(INDEX, encoding="utf-8")
    (out / "404.html").write_text("<html>export's not-found page</html>", encoding="utf-8")
    (out / "_next" / "static" / "app.js").write_text("console.log('dashboard')", encoding="utf-8")
    (out / "health").write_text("a file, not the health route", encoding="utf-8")
    return out


def client_for(dashboard_dir: Path) -> Iterator[TestClient]:
    settings = Settings(model_path=Path("absent.safetensors"), dashboard_dir=dashboard_dir)
    with TestClient(create_app(settings, load_detector=no_model)) as client:
        yield client


@pytest.fixture
def client(dashboard_dir: Path) -> Iterator[TestClient]:
    yield from client_for(dashboard_dir)


def test_root_serves_the_dashboards_index_html(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == INDEX


def test_the_dashboards_assets_are_served(client: TestClient) -> None:
    response = client.get("/_next/static/app.js")
    assert response.status_code == 200
    assert response.text == "console.log('dashboard')"


def test_api_routes_win_over_files_of_the_same_name(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 503  # the route (no model here), not the file named "health"
    # The route's JSON, whichever it has reached: the load of a missing model fails in the background.
    assert health.json()["status"] in ("loading", "unavailable")
    assert client.get("/openapi.json").json()["info"]["title"] == "Détecteur"
    assert client.get("/metrics").text.startswith("#")


def test_unknown_paths_are_json_404s_not_the_exports_html_page(client: TestClient) -> None:
    for response in (client.get("/v1/no-such-route"), client.post("/v1/no-such-route")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_an_api_route_asked_with_the_wrong_method_is_a_405_not_the_dashboard(client: TestClient) -> None:
    response = client.get("/v1/predict")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"
    assert client.get("/").status_code == 200  # the dashboard itself is unaffected


def test_without_a_built_dashboard_root_points_to_the_docs(tmp_path: Path) -> None:
    for client in client_for(tmp_path / "never-built"):
        response = client.get("/")
        assert response.status_code == 200
        assert response.json()["docs"] == "/docs"
        assert "npm run build" in response.json()["dashboard"]
