from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from detecteur.api.main import create_app
from detecteur.api.routes.predict import threshold_centred
from detecteur.config import Settings
from detecteur.inference.engine import STABILITY_VIEWS, Detector, decide
from detecteur.model.networks import build, read_metadata, save_model
from tests import provenance_fixtures
from tests.test_faces import SAMPLES
from tests.test_model import metadata_for

FACE = SAMPLES / "stylegan-ffhq-real-00006.jpg"
OTHER_FACE = SAMPLES / "stylegan-ffhq-fake-00ELJIYESN.jpg"


def encoded(image: Image.Image, image_format: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def wait_until_ready(client: TestClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "the model never became ready"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-model") / "model.safetensors"
    metadata = metadata_for(framing="face_crop", threshold=0.5, version="api-test")
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata, path)
    figures = path.parent / "figures"
    figures.mkdir()
    Image.new("RGB", (8, 8)).save(figures / "roc.png")
    return path


@pytest.fixture(scope="module")
def settings(model_file: Path) -> Settings:
    return Settings(model_path=model_file, max_upload_bytes=2 * 1024 * 1024, max_pixels=5_000_000, max_files=3)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        yield test_client


def post_image(client: TestClient, data: bytes, name: str = "face.jpg", route: str = "/v1/predict") -> object:
    return client.post(route, files={"file": (name, data, "application/octet-stream")})


def test_health_is_503_while_loading_then_200_with_the_model_version(settings: Settings) -> None:
    release = threading.Event()

    def slow_loader(s: Settings) -> Detector:
        release.wait(timeout=30)
        return Detector(s.model_path)

    with TestClient(create_app(settings, load_detector=slow_loader)) as client:
        loading = client.get("/health")
        assert loading.status_code == 503
        assert loading.json() == {"status": "loading", "model_loaded": False, "model_version": None, "detail": None}
        assert client.post("/v1/predict", files={"file": ("a.jpg", FACE.read_bytes())}).status_code == 503
        release.set()
        wait_until_ready(client)
        assert client.get("/health").json() == {
            "status": "ok",
            "model_loaded": True,
            "model_version": "api-test",
            "detail": None,
        }


def test_a_missing_model_gives_503_with_the_reason_not_a_crash(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(model_path=tmp_path / "absent.safetensors"))) as client:
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert "not found" in health.json()["detail"]
        response = client.post("/v1/predict", files={"file": ("a.jpg", FACE.read_bytes())})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
        assert response.headers["Retry-After"]


def test_model_route_describes_the_running_model(client: TestClient, model_file: Path) -> None:
    info = client.get("/v1/model").json()
    metadata = read_metadata(model_file)
    assert info["version"] == "api-test" and info["arch"] == "efficientnet_lite0" and info["in_chans"] == 4
    assert info["threshold"] == metadata.threshold and info["framing"] == "face_crop"
    assert info["training_stages"] == [stage.model_dump() for stage in metadata.training_stages]
    assert info["figures"] == ["/v1/model/figures/roc.png"]
    figure = client.get(info["figures"][0])
    assert figure.status_code == 200 and figure.headers["content-type"] == "image/png"
    assert client.get("/v1/model/figures/../model.safetensors").status_code == 404


def test_predict_finds_the_face_and_returns_a_consistent_verdict(client: TestClient, model_file: Path) -> None:
    response = post_image(client, FACE.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "api-test"
    (result,) = body["results"]
    assert result["filename"] == "face.jpg" and (result["width"], result["height"]) == (256, 256)
    assert result["face_detected"] is True
    (face,) = result["faces"]
    assert face["box"]["width"] > 50 and face["box"]["score"] > 0.5
    expected = decide(face["fake_probability"], read_metadata(model_file))
    # With the stability check (on by default), a decided verdict that did not hold is "uncertain".
    held = face["stability"]["stable"] or expected.verdict == "borderline"
    assert face["verdict"] == (expected.verdict if held else "uncertain") == result["verdict"]
    assert face["confidence"] == pytest.approx(expected.confidence)
    timings = result["timings"]
    assert 0 <= timings["decode_ms"] <= timings["total_ms"] and timings["model_ms"] > 0


def test_without_a_face_the_whole_image_is_judged_and_said_so(client: TestClient) -> None:
    result = post_image(client, encoded(Image.new("RGB", (300, 200), (120, 120, 120)))).json()["results"][0]
    assert result["face_detected"] is False
    assert [face["box"] for face in result["faces"]] == [None]


def test_an_image_with_two_faces_gets_a_verdict_per_face_and_the_most_suspicious_overall(client: TestClient) -> None:
    pair = Image.new("RGB", (512, 256))
    pair.paste(Image.open(FACE).convert("RGB"), (0, 0))
    pair.paste(Image.open(OTHER_FACE).convert("RGB"), (256, 0))
    result = post_image(client, encoded(pair)).json()["results"][0]
    assert len(result["faces"]) == 2
    assert result["fake_probability"] == max(face["fake_probability"] for face in result["faces"])


def test_several_files_are_judged_in_one_request(client: TestClient) -> None:
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in (FACE, OTHER_FACE)]
    body = client.post("/v1/predict", files=files).json()
    assert [r["filename"] for r in body["results"]] == [FACE.name, OTHER_FACE.name]


def test_seed_client_contract_field_by_field(client: TestClient, model_file: Path) -> None:
    body = post_image(client, FACE.read_bytes(), route="/predict").json()
    assert set(body) == {"result", "confidence", "raw_scores"}
    fake, real = body["raw_scores"]["fake"], body["raw_scores"]["real"]
    assert fake + real == pytest.approx(1.0)
    is_fake = fake >= read_metadata(model_file).threshold
    assert body["result"] == ("Fake" if is_fake else "Real")
    assert body["confidence"] == pytest.approx(100 * (fake if is_fake else real), abs=0.01)
    v1 = post_image(client, FACE.read_bytes()).json()["results"][0]
    assert fake == pytest.approx(v1["fake_probability"])


def rgba_with_transparency() -> bytes:
    image = Image.open(FACE).convert("RGBA")
    image.putalpha(Image.new("L", image.size, 128))
    return encoded(image, "PNG")


def exif_rotated() -> bytes:
    image = Image.open(FACE).convert("RGB").crop((0, 0, 256, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    return encoded(image, "JPEG", exif=exif)


@pytest.mark.parametrize(
    ("make_payload", "status", "code"),
    [
        (lambda: b"", 400, "empty_file"),
        (lambda: b"hello, this is text", 415, "unsupported_format"),
        (lambda: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", 415, "unsupported_format"),
        (lambda: FACE.read_bytes()[:2000], 422, "corrupt_image"),
        (lambda: encoded(Image.new("1", (3000, 3000)), "PNG"), 413, "too_many_pixels"),
        (lambda: encoded(Image.new("RGB", (1, 1))), 422, "image_too_small"),
        (lambda: np.random.default_rng(0).bytes(3 * 1024 * 1024), 413, "file_too_large"),
    ],
    ids=["empty", "text", "pdf", "truncated-jpeg", "huge-dimensions", "one-pixel", "oversized-upload"],
)
def test_bad_inputs_get_a_clear_4xx_error(client: TestClient, make_payload: object, status: int, code: str) -> None:
    assert callable(make_payload)
    response = post_image(client, make_payload())
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    "make_payload",
    [
        lambda: encoded(Image.open(FACE).convert("CMYK"), "JPEG"),
        lambda: encoded(Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16)), "PNG"),
        rgba_with_transparency,
        lambda: encoded(Image.open(FACE).convert("L"), "PNG"),
    ],
    ids=["cmyk-jpeg", "16-bit-png", "alpha-png", "grayscale"],
)
def test_unusual_but_valid_images_are_judged(client: TestClient, make_payload: object) -> None:
    assert callable(make_payload)
    response = post_image(client, make_payload())
    assert response.status_code == 200, response.text


def test_exif_orientation_is_applied_before_judging(client: TestClient) -> None:
    result = post_image(client, exif_rotated()).json()["results"][0]
    assert (result["width"], result["height"]) == (200, 256)


def test_wrong_field_name_and_too_many_files_are_refused(client: TestClient) -> None:
    wrong = client.post("/v1/predict", files={"image": ("a.jpg", FACE.read_bytes())})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "missing_file"
    many = [("files", (f"{i}.jpg", FACE.read_bytes(), "image/jpeg")) for i in range(4)]
    too_many = client.post("/v1/predict", files=many)
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_files"
    seed_wrong = client.post("/predict", files={"image": ("a.jpg", FACE.read_bytes())})
    assert seed_wrong.status_code == 422 and seed_wrong.json()["error"]["code"] == "invalid_request"


def test_unknown_routes_get_a_json_404(client: TestClient) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    post_image(client, b"")
    client.get("/v2/nothing/1")
    text = client.get("/metrics").text
    assert 'detecteur_requests_total{method="POST",route="/v1/predict",status="400"}' in text
    # A route's template (the dashboard's mount at / when it is built, else "unmatched"), never the raw URL: a
    # scanner cannot blow up the metric's cardinality.
    assert 'method="GET",route="' in text and 'status="404"' in text and "nothing" not in text
    assert "detecteur_model_seconds_count" in text and "detecteur_faces_per_image_bucket" in text


def test_cors_allows_the_seed_client_origin(client: TestClient) -> None:
    response = client.options(
        "/predict", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    )
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_openapi_docs_describe_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/model", "/v1/predict", "/predict", "/metrics"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_explain_returns_a_heatmap_of_the_crop_size_that_is_not_constant(client: TestClient, model_file: Path) -> None:
    import base64

    face = client.post("/v1/predict?explain=true", files={"file": ("f.jpg", FACE.read_bytes())}).json()
    (result,) = face["results"][0]["faces"]
    heatmap = Image.open(io.BytesIO(base64.b64decode(result["heatmap_png"])))
    size = read_metadata(model_file).input_size
    assert heatmap.size == (size, size)
    assert np.asarray(heatmap).std() > 1.0
    plain = post_image(client, FACE.read_bytes()).json()["results"][0]["faces"][0]
    assert plain["heatmap_png"] is None


def test_a_body_over_the_request_limit_is_refused_before_it_is_parsed(client: TestClient, settings: Settings) -> None:
    limit = settings.max_files * settings.max_upload_bytes + 64 * 1024
    huge = b"x" * (limit + 1)
    response = client.post("/v1/predict", content=huge, headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536

    streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413
    assert client.get("/health").status_code == 200


# Evidence lines: content credentials and metadata read from the upload, the stability check, and the seed route's
# confidence (tests/provenance_fixtures.py makes the signed files).


def test_a_signed_face_gets_its_content_credentials_and_every_evidence_line(client: TestClient) -> None:
    result = post_image(client, provenance_fixtures.signed(FACE.read_bytes())).json()["results"][0]

    evidence = result["evidence"]
    credentials = evidence["content_credentials"]
    assert credentials["status"] == "untrusted"
    assert credentials["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert credentials["claim_generator"] == "detecteur-tests 1.0"
    assert [line["source"] for line in evidence["lines"]] == ["pixel_model", "content_credentials", "metadata"]
    assert evidence["summary"] and evidence["strength"] in ("moderate", "none")
    assert result["timings"]["provenance_ms"] >= 0
    stability = result["faces"][0]["stability"]
    assert set(stability["probabilities"]) == set(STABILITY_VIEWS)
    assert 0 <= stability["spread"] <= 1


def test_a_tampered_signed_face_is_reported_invalid(client: TestClient) -> None:
    signed = provenance_fixtures.signed(FACE.read_bytes())
    result = post_image(client, provenance_fixtures.tampered(signed)).json()["results"][0]

    assert result["evidence"]["content_credentials"]["status"] == "invalid"
    assert "assertion.dataHash.mismatch" in result["evidence"]["content_credentials"]["failures"]


def test_camera_exif_and_xmp_reach_the_evidence_block(client: TestClient) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R6"
    camera = post_image(client, encoded(Image.open(FACE), exif=exif.tobytes())).json()["results"][0]
    xmp = post_image(client, encoded(Image.open(FACE), xmp=provenance_fixtures.xmp_packet())).json()["results"][0]

    assert camera["evidence"]["metadata"]["camera_model"] == "Canon EOS R6"
    assert xmp["evidence"]["metadata"]["digital_source_type"] == "trainedAlgorithmicMedia"


@pytest.mark.parametrize(
    "build",
    [provenance_fixtures.malformed_manifest, provenance_fixtures.nested_boxes, provenance_fixtures.exif_bomb],
    ids=["malformed-manifest", "nested-boxes", "exif-bomb"],
)
def test_hostile_metadata_is_unreadable_evidence_not_a_server_error(client: TestClient, build: object) -> None:
    response = post_image(client, build())  # type: ignore[operator]

    assert response.status_code == 200, response.text
    evidence = response.json()["results"][0]["evidence"]
    assert "unreadable" in (evidence["content_credentials"]["status"], evidence["metadata"]["status"])


def test_a_huge_xmp_packet_is_a_4xx(client: TestClient) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", provenance_fixtures.xmp_packet(padding=3_000_000).decode(), zip=True)
    response = post_image(client, encoded(Image.open(FACE), "PNG", pnginfo=info), name="face.png")

    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] == "corrupt_image"


def test_the_stability_check_can_be_turned_off(model_file: Path) -> None:
    settings = Settings(model_path=model_file, stability_check=False)
    with TestClient(create_app(settings)) as off:
        wait_until_ready(off)
        face = post_image(off, FACE.read_bytes()).json()["results"][0]["faces"][0]
    assert face["stability"] is None


@pytest.mark.parametrize(("p", "t"), [(0.49, 0.4877), (0.48, 0.4877), (0.6, 0.9), (0.95, 0.9), (0.0, 0.3), (1.0, 0.3)])
def test_the_threshold_folded_into_calibration_sits_at_one_half(p: float, t: float) -> None:
    centred = threshold_centred(p, t)
    assert (centred >= 0.5) == (p >= t)
    assert threshold_centred(t, t) == pytest.approx(0.5)


def test_the_seed_route_never_pairs_a_result_with_a_confidence_under_50(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_model(
        build("efficientnet_lite0", 4, pretrained=False),
        metadata_for(framing="face_crop", threshold=0.9, borderline_band=(0.85, 0.95)),
        path,
    )
    with TestClient(create_app(Settings(model_path=path, stability_check=False))) as seed_client:
        wait_until_ready(seed_client)
        for image in (FACE, OTHER_FACE):
            body = post_image(seed_client, image.read_bytes(), route="/predict").json()
            fake = post_image(seed_client, image.read_bytes()).json()["results"][0]["fake_probability"]
            assert body["confidence"] >= 50
            assert body["result"] == ("Fake" if fake >= 0.9 else "Real")
            assert body["raw_scores"]["fake"] == pytest.approx(threshold_centred(fake, 0.9))
