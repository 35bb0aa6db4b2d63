from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from detecteur.api.main import create_app
from detecteur.config import Settings
from detecteur.inference.engine import decide
from detecteur.model.networks import read_metadata
from tests.test_api import wait_until_ready
from tests.test_video import save_small_face_model
from tests.video_clips import FACE, OTHER_FACE, encode_clip, moving_faces, plain_frames


@pytest.fixture(scope="module")
def video_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_small_face_model(tmp_path_factory.mktemp("api-video-model") / "model.safetensors")


@pytest.fixture(scope="module")
def client(video_model: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_path=video_model,
        max_upload_bytes=1024 * 1024,
        max_files=2,
        video_max_bytes=3 * 1024 * 1024,
        video_max_seconds=2.5,
    )
    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        yield test_client


def post_video(client: TestClient, data: bytes, name: str = "clip.mp4") -> Any:
    return client.post("/v1/predict/video", files={"file": (name, data, "video/mp4")})


def test_a_clip_gets_a_verdict_per_track_a_series_to_plot_and_its_timings(
    client: TestClient, video_model: Path
) -> None:
    clip = encode_clip(moving_faces(2, 6, (FACE, OTHER_FACE), size=(340, 180)), fps=6)
    response = post_video(client, clip)
    assert response.status_code == 200, response.text
    body = response.json()
    metadata = read_metadata(video_model)
    assert body["model_version"] == "video-test" and body["filename"] == "clip.mp4"
    assert body["video"] | {"duration_s": round(body["video"]["duration_s"], 3)} == {
        "container": "MP4/MOV",
        "codec": "mpeg4",
        "width": 340,
        "height": 180,
        "duration_s": 2.0,
        "fps": 6.0,
        "frames_sampled": 4,
        "sample_fps": 2.0,
    }
    assert body["face_detected"] is True and len(body["tracks"]) == 2
    for track in body["tracks"]:
        assert track["frames_seen"] == len(track["faces"]) == 4
        probabilities = [face["fake_probability"] for face in track["faces"]]
        assert track["fake_probability"] == pytest.approx(sum(probabilities) / 4)
        expected = decide(track["fake_probability"], metadata)
        assert (track["verdict"], track["confidence"]) == (expected.verdict, pytest.approx(expected.confidence))
        assert all(face["box"]["width"] > 50 for face in track["faces"])
        for face in track["faces"]:
            point = body["series"][face["sample"]]
            assert point["time_s"] == face["time_s"]
            assert point["fake_probability"][str(track["track_id"])] == face["fake_probability"]
    assert [point["time_s"] for point in body["series"]] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    top = max(body["tracks"], key=lambda track: track["fake_probability"])
    assert (body["most_suspicious_track"], body["verdict"]) == (top["track_id"], top["verdict"])
    timings = body["timings"]
    assert timings["model_ms"] > 0 and timings["decode_ms"] + timings["model_ms"] <= timings["total_ms"]


def test_a_clip_without_faces_is_judged_on_whole_frames(client: TestClient) -> None:
    body = post_video(client, encode_clip(plain_frames(1, 4), fps=4), "plain.mp4").json()
    assert body["face_detected"] is False
    assert [face["box"] for face in body["tracks"][0]["faces"]] == [None, None]


@pytest.mark.parametrize(
    ("make_payload", "status", "code"),
    [
        (lambda: b"", 400, "empty_file"),
        (lambda: FACE.read_bytes(), 415, "unsupported_format"),
        (lambda: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", 415, "unsupported_format"),
        (lambda: encode_clip(plain_frames(2, 4), fps=4)[:1500], 422, "corrupt_video"),
        (lambda: encode_clip(plain_frames(3, 4), fps=4), 413, "video_too_long"),
        (lambda: b"\x00\x00\x00\x1cftypisom" + b"\x00" * (3 * 1024 * 1024), 413, "file_too_large"),
    ],
    ids=["empty", "jpeg-image", "pdf", "truncated-mp4", "over-the-duration-limit", "over-the-size-limit"],
)
def test_bad_videos_get_a_clear_4xx_error(client: TestClient, make_payload: Any, status: int, code: str) -> None:
    response = post_video(client, make_payload())
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert client.get("/health").status_code == 200


def test_a_video_request_without_a_file_says_which_field_to_use(client: TestClient) -> None:
    response = client.post("/v1/predict/video", files={"video": ("clip.mp4", b"data")})
    assert response.status_code == 422 and response.json()["error"]["code"] == "missing_file"


def test_the_video_route_is_in_the_openapi_document_and_counted_in_the_metrics(client: TestClient) -> None:
    assert "/v1/predict/video" in client.get("/openapi.json").json()["paths"]
    post_video(client, b"")
    assert 'route="/v1/predict/video",status="400"' in client.get("/metrics").text


def test_the_video_route_has_its_own_body_limit_and_the_image_routes_keep_theirs(client: TestClient) -> None:
    video_limit, image_limit = 3 * 1024 * 1024 + 64 * 1024, 2 * 1024 * 1024 + 64 * 1024
    headers = {"content-type": "multipart/form-data; boundary=b"}
    for route, limit in (("/v1/predict/video", video_limit), ("/v1/predict", image_limit)):
        response = client.post(route, content=b"x" * (limit + 1), headers=headers)
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        assert str(limit) in response.json()["error"]["message"]
