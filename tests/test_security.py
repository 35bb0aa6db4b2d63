"""Limits and access control of the service: inference queue, request timeout, API keys, rate limit, CORS, security
headers. A stand-in detector (no model) makes inference as slow or as blocked as each test needs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from detecteur.api.main import create_app
from detecteur.api.security import DASHBOARD_CSP, DOCS_CSP, RequestTimeout, TokenBuckets, display_filename
from detecteur.config import Settings
from detecteur.inference.engine import FaceVerdict, ImageVerdict, decide
from detecteur.model.networks import ModelMetadata
from tests.test_api import encoded, wait_until_ready
from tests.test_model import metadata_for

IMAGE = encoded(Image.new("RGB", (64, 64), (90, 120, 150)))


class StandInDetector:
    """Quacks like `engine.Detector` for the API: judges every image 'authentic', after `hold` is set."""

    def __init__(self) -> None:
        self.metadata: ModelMetadata = metadata_for(version="stand-in")
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Semaphore(0)

    def judge(self, image: Image.Image, explain: bool = False, **options: object) -> ImageVerdict:
        self.entered.release()
        self.hold.wait(timeout=30)
        return ImageVerdict(faces=[FaceVerdict(None, decide(0.1, self.metadata))], face_detected=False)


def service(tmp_path: Path, detector: StandInDetector | None = None, **overrides: object) -> TestClient:
    settings = Settings(model_path=tmp_path / "stand-in.safetensors", **overrides)  # type: ignore[arg-type]
    stand_in = detector or StandInDetector()
    return TestClient(create_app(settings, load_detector=lambda _: stand_in))  # type: ignore[arg-type,return-value]


@pytest.fixture
def open_client(tmp_path: Path) -> Iterator[TestClient]:
    with service(tmp_path) as client:
        wait_until_ready(client)
        yield client


def predict(client: TestClient, route: str = "/v1/predict", **headers: str) -> object:
    return client.post(route, files={"file": ("a.jpg", IMAGE, "image/jpeg")}, headers=headers)


# --- security headers and CORS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health"), ("GET", "/nowhere"), ("POST", "/v1/predict"), ("GET", "/openapi.json")],
)
def test_every_response_carries_the_security_headers(open_client: TestClient, method: str, path: str) -> None:
    response = open_client.request(method, path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == DASHBOARD_CSP


def test_a_refusal_from_the_body_limit_carries_the_security_headers_too(open_client: TestClient) -> None:
    response = open_client.post(
        "/predict", content=b"x" * (21 * 1024 * 1024), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert response.headers["x-frame-options"] == "DENY"


def test_the_dashboard_policy_allows_what_a_static_next_export_needs_and_nothing_foreign() -> None:
    directives = dict(directive.split(" ", 1) for directive in DASHBOARD_CSP.split("; "))
    assert directives["script-src"] == "'self' 'unsafe-inline'"
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["media-src"] == "'self' blob:"  # the video view plays the chosen clip from an object URL
    assert directives["frame-ancestors"] == "'none'"
    assert "http" not in DASHBOARD_CSP


def test_the_docs_page_gets_a_policy_that_lets_swagger_ui_load(open_client: TestClient) -> None:
    response = open_client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert "https://cdn.jsdelivr.net" in DOCS_CSP and "cdn.jsdelivr.net" in response.text


def test_a_foreign_origin_gets_no_cors_permission(open_client: TestClient) -> None:
    preflight = open_client.options(
        "/v1/predict", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = open_client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers
    allowed = open_client.get("/health", headers={"Origin": "http://localhost:3000"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_echoed_file_names_lose_directories_and_control_characters(open_client: TestClient) -> None:
    response = open_client.post("/v1/predict", files={"file": ("../../etc/passwd.jpg", IMAGE, "image/jpeg")})
    assert response.json()["results"][0]["filename"] == "passwd.jpg"
    assert display_filename("C:\\Users\\x\\face\x00.png") == "face.png"
    assert display_filename("pass\nwd\x00.jpg") == "passwd.jpg"
    assert display_filename("\x00") is None and display_filename("a" * 300) == "a" * 255


# --- API keys and rate limit -----------------------------------------------------------------------------------------


def test_api_keys_come_from_a_comma_separated_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTEUR_API_KEYS", " alpha, beta ,,")
    keys = Settings().api_keys
    assert [key.get_secret_value() for key in keys] == ["alpha", "beta"]
    assert "alpha" not in repr(Settings())


def test_with_api_keys_the_prediction_routes_need_one_and_health_stays_open(tmp_path: Path) -> None:
    with service(tmp_path, api_keys=["alpha", "beta"]) as client:
        wait_until_ready(client)
        missing = predict(client)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = predict(client, **{"X-API-Key": "gamma"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert predict(client, **{"X-API-Key": "alpha"}).status_code == 200
        assert predict(client, "/predict", Authorization="Bearer beta").status_code == 200
        assert client.get("/v1/model").status_code == 401 and client.get("/metrics").status_code == 401
        assert client.get("/v1/model", headers={"X-API-Key": "beta"}).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200
        preflight = client.options(
            "/v1/predict", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200


def test_the_rate_limit_is_per_key_and_says_when_to_retry(tmp_path: Path) -> None:
    with service(tmp_path, api_keys=["alpha", "beta"], rate_limit_per_minute=6, rate_limit_burst=2) as client:
        wait_until_ready(client)
        statuses = [predict(client, **{"X-API-Key": "alpha"}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = predict(client, **{"X-API-Key": "alpha"})
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        assert predict(client, **{"X-API-Key": "beta"}).status_code == 200
        assert client.get("/health").status_code == 200


def test_a_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=2, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 100.0
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0] and buckets.take("a") > 0


def test_token_buckets_forget_callers_whose_bucket_is_full_again() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=1, clock=lambda: now[0], max_callers=10)
    for caller in range(10):
        buckets.take(str(caller))
    now[0] = 5.0
    buckets.take("new")
    assert len(buckets._buckets) <= 2


# --- inference queue and timeout -------------------------------------------------------------------------------------


def test_when_the_inference_queue_is_full_requests_get_503_with_retry_after(tmp_path: Path) -> None:
    detector = StandInDetector()
    with service(tmp_path, detector, inference_threads=1, max_queue=1) as client:
        wait_until_ready(client)
        detector.hold.clear()
        answers: list[int] = []
        first = threading.Thread(target=lambda: answers.append(predict(client).status_code))
        second = threading.Thread(target=lambda: answers.append(predict(client).status_code))
        first.start()
        assert detector.entered.acquire(timeout=10), "the first image never reached the detector"
        second.start()  # waits for the one inference thread
        deadline = time.monotonic() + 10
        while client.app.state.service.inference.pending < 2:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the second image never queued"
            time.sleep(0.01)
        refused = predict(client)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
        assert refused.headers["retry-after"]
        assert client.get("/health").status_code == 200
        detector.hold.set()
        first.join(timeout=10)
        second.join(timeout=10)
        assert answers == [200, 200]


def test_a_request_still_being_judged_at_the_timeout_gets_503(tmp_path: Path) -> None:
    detector = StandInDetector()
    with service(tmp_path, detector, request_timeout_seconds=0.3) as client:
        wait_until_ready(client)
        detector.hold.clear()
        threading.Timer(1.0, detector.hold.set).start()
        response = predict(client)
        assert response.status_code == 503 and response.json()["error"]["code"] == "timeout"
        assert response.headers["retry-after"]
        assert client.get("/health").status_code == 200


def test_a_body_that_stops_arriving_is_cut_off_with_408() -> None:
    received_body = False

    async def reads_the_body(scope: object, receive: object, send: object) -> None:
        nonlocal received_body
        while (await receive())["more_body"]:  # type: ignore[operator]
            pass
        received_body = True

    async def slow_client() -> dict[str, object]:
        await anyio.sleep(0.05)
        if not hasattr(slow_client, "sent"):
            slow_client.sent = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"x" * 10, "more_body": True}
        await anyio.sleep(60)  # the rest never comes
        return {"type": "http.disconnect"}

    sent: list[dict[str, object]] = []

    async def record(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/v1/predict", "method": "POST", "headers": [(b"content-length", b"1000")]}
    started = time.monotonic()
    anyio.run(RequestTimeout(reads_the_body, seconds=0.3), scope, slow_client, record)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5 and not received_body
    assert sent[0]["status"] == 408
    assert b'"request_timeout"' in sent[1]["body"]  # type: ignore[operator]


def test_the_seed_route_refuses_a_body_over_one_file_while_v1_takes_several(tmp_path: Path) -> None:
    with service(tmp_path, max_upload_bytes=64 * 1024, max_files=4) as client:
        wait_until_ready(client)
        body = b"x" * (200 * 1024)  # over one file + framing, under four
        headers = {"content-type": "multipart/form-data; boundary=b"}
        assert client.post("/predict", content=body, headers=headers).status_code == 413
        assert client.post("/v1/predict", content=body, headers=headers).status_code != 413
