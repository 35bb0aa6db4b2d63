from __future__ import annotations

import io
import random
import struct
from pathlib import Path
from typing import cast

import av
import pytest
from PIL import Image

from detecteur.inference.engine import Detector, Verdict, decide
from detecteur.inference.video import Track, TrackFace, VideoVerdict, judge_video, link_tracks
from detecteur.inputs.faces import FaceBox
from detecteur.inputs.video_frames import (
    CorruptVideo,
    EmptyVideo,
    UnsupportedVideo,
    VideoError,
    VideoInfo,
    VideoLimits,
    VideoTooLarge,
    VideoTooLong,
    is_video_file,
)
from detecteur.model.networks import ModelMetadata, build, save_model
from tests.test_model import metadata_for
from tests.video_clips import FACE, OTHER_FACE, encode_clip, moving_faces, plain_frames

LIMITS = VideoLimits(sample_fps=2.0, max_frames=60, max_seconds=10.0, max_pixels=5_000_000)


def save_small_face_model(path: Path) -> Path:
    """An untrained face-crop model at 64 px: fast, and its scores are as good as any for checking plumbing."""
    metadata = metadata_for(framing="face_crop", threshold=0.5, version="video-test")
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata, path)
    return path


@pytest.fixture(scope="module")
def video_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_small_face_model(tmp_path_factory.mktemp("video-model") / "model.safetensors")


@pytest.fixture(scope="module")
def detector(video_model: Path) -> Detector:
    return Detector(video_model)


@pytest.fixture(scope="module")
def two_faces_clip() -> bytes:
    return encode_clip(moving_faces(3, 10, (FACE, OTHER_FACE), size=(340, 180)), fps=10)


@pytest.fixture(scope="module")
def two_faces(two_faces_clip: bytes, detector: Detector) -> VideoVerdict:
    return judge_video(two_faces_clip, detector, LIMITS)


def frame_at(clip: bytes, time_s: float) -> Image.Image:
    with av.open(io.BytesIO(clip)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= time_s - 1e-6:
                return Image.fromarray(frame.to_ndarray(format="rgb24"))
    raise AssertionError(f"no frame at {time_s} s")


def box(x: int, y: int = 0, side: int = 100) -> FaceBox:
    return FaceBox(x, y, side, side, 0.9)


def test_two_people_give_two_tracks_followed_through_every_sampled_frame(two_faces: VideoVerdict) -> None:
    assert two_faces.face_detected
    assert two_faces.info.sampled_times_s == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert (two_faces.info.width, two_faces.info.height, two_faces.info.container) == (340, 180, "MP4/MOV")
    assert two_faces.info.duration_s == pytest.approx(3.0)
    assert len(two_faces.tracks) == 2
    for track in two_faces.tracks:
        assert [face.sample for face in track.faces] == list(range(6))
        xs = [face.box.x for face in track.faces if face.box]
        assert len(xs) == 6 and xs == sorted(xs), "each track follows one face drifting right"
    left, right = sorted(two_faces.tracks, key=lambda track: track.faces[0].box.x if track.faces[0].box else 0)
    assert all(
        a.box and b.box and a.box.x + a.box.width <= b.box.x for a, b in zip(left.faces, right.faces, strict=True)
    )


def test_each_face_is_scored_exactly_as_the_image_path_scores_that_frame(
    two_faces: VideoVerdict, two_faces_clip: bytes, detector: Detector
) -> None:
    for sample in (0, 3):
        time_s = two_faces.info.sampled_times_s[sample]
        as_image = detector.judge(frame_at(two_faces_clip, time_s))
        expected = {face.box: face.verdict.fake_probability for face in as_image.faces}
        got = {
            face.box: face.verdict.fake_probability
            for t in two_faces.tracks
            for face in t.faces
            if face.sample == sample
        }
        assert got.keys() == expected.keys()
        for key, probability in got.items():
            assert probability == pytest.approx(expected[key], abs=1e-5)


def test_a_track_scores_the_mean_of_its_faces_with_the_model_threshold_and_band(
    two_faces: VideoVerdict, detector: Detector
) -> None:
    for track in two_faces.tracks:
        probabilities = [face.verdict.fake_probability for face in track.faces]
        mean = sum(probabilities) / len(probabilities)
        assert track.mean_fake_probability == pytest.approx(mean)
        assert track.verdict == decide(track.mean_fake_probability, detector.metadata)
        over = sum(p >= detector.metadata.threshold for p in probabilities) / len(probabilities)
        assert track.fraction_over_threshold == pytest.approx(over)
    assert two_faces.most_suspicious.mean_fake_probability == max(t.mean_fake_probability for t in two_faces.tracks)


def test_frames_are_sampled_at_the_set_rate_and_spread_out_to_the_frame_cap(detector: Detector) -> None:
    clip = encode_clip(plain_frames(3, 10), fps=10)
    at_rate = judge_video(clip, detector, LIMITS)
    assert at_rate.info.sampled_times_s == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    capped = judge_video(clip, detector, VideoLimits(2.0, 4, 10.0, 5_000_000))
    # Every 0.75 s: the first frame at or after 0, 0.75, 1.5 and 2.25 s.
    assert capped.info.sampled_times_s == pytest.approx([0.0, 0.8, 1.5, 2.3])
    assert capped.info.sample_fps == pytest.approx(4 / 3)


def test_a_video_without_faces_is_judged_on_whole_frames_and_says_so(detector: Detector) -> None:
    judged = judge_video(encode_clip(plain_frames(2, 5), fps=5), detector, LIMITS)
    assert judged.face_detected is False
    (track,) = judged.tracks
    assert len(track.faces) == judged.info.frames_sampled == 4
    assert all(face.box is None for face in track.faces)
    assert track.verdict == decide(track.mean_fake_probability, detector.metadata)


@pytest.mark.parametrize("container", ["mov", "avi", "webm"])
def test_mov_avi_and_webm_are_accepted(detector: Detector, container: str) -> None:
    clip = encode_clip(moving_faces(1, 4, size=(192, 160), face_side=140), fps=4, container=container)
    judged = judge_video(clip, detector, LIMITS)
    assert judged.face_detected and judged.info.frames_sampled == 2


def test_the_containers_rotation_is_applied_before_looking_for_faces(detector: Detector) -> None:
    upright = moving_faces(1, 4)  # the face on the left of a landscape frame
    clip = bytearray(encode_clip([frame.rotate(-90, expand=True) for frame in upright], fps=4))
    matrix_at = clip.index(b"tkhd") + 4 + 40  # version-0 track header: the display matrix follows 40 bytes in
    clip[matrix_at : matrix_at + 36] = struct.pack(">9i", 0, -0x10000, 0, 0x10000, 0, 0, 0, 0, 0x40000000)
    judged = judge_video(bytes(clip), detector, LIMITS)
    assert (judged.info.width, judged.info.height) == upright[0].size
    face = judged.tracks[0].faces[0].box
    assert face is not None and face.x + face.width / 2 < upright[0].width / 2


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", EmptyVideo),
        (b"hello, this is a text file and not a video", UnsupportedVideo),
        (FACE.read_bytes(), UnsupportedVideo),
        (b"\x00\x00\x00\x1cftypisom" + bytes(range(256)) * 8, CorruptVideo),
        (b"\x1a\x45\xdf\xa3" + b"\xff" * 500, CorruptVideo),
    ],
    ids=["empty", "text", "jpeg-image", "mp4-header-then-garbage", "webm-header-then-garbage"],
)
def test_what_is_not_a_video_we_take_is_refused_with_its_reason(
    detector: Detector, payload: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        judge_video(payload, detector, LIMITS)
    assert str(raised.value)


def test_a_truncated_video_is_refused_as_corrupt(detector: Detector, two_faces_clip: bytes) -> None:
    with pytest.raises(CorruptVideo):
        judge_video(two_faces_clip[: len(two_faces_clip) // 2], detector, LIMITS)


def test_a_video_over_the_duration_limit_is_refused_before_decoding(detector: Detector) -> None:
    clip = encode_clip(plain_frames(3, 5), fps=5)
    with pytest.raises(VideoTooLong, match=r"3\.0 s; the limit is 2 s"):
        judge_video(clip, detector, VideoLimits(2.0, 60, 2.0, 5_000_000))


def test_frames_over_the_pixel_limit_are_refused(detector: Detector) -> None:
    with pytest.raises(VideoTooLarge):
        judge_video(encode_clip(plain_frames(1, 2), fps=2), detector, VideoLimits(2.0, 60, 10.0, 10_000))


def test_a_file_path_is_judged_like_its_bytes(detector: Detector, tmp_path: Path) -> None:
    clip = encode_clip(plain_frames(1, 4), fps=4)
    path = tmp_path / "clip.bin"
    path.write_bytes(clip)
    assert is_video_file(path) and not is_video_file(FACE)
    assert judge_video(path, detector, LIMITS).tracks == judge_video(clip, detector, LIMITS).tracks


def test_link_tracks_keeps_each_face_on_its_own_track_whatever_the_detection_order() -> None:
    frames = [[box(0), box(300)], [box(310), box(12)], [box(25), box(320)]]
    assert link_tracks(frames) == [[(0, 0), (1, 1), (2, 0)], [(0, 1), (1, 0), (2, 1)]]


def test_link_tracks_starts_a_track_for_a_new_face_and_resumes_one_after_a_gap() -> None:
    frames = [[box(0)], [], [box(10), box(600)], [box(610)]]
    assert link_tracks(frames) == [[(0, 0), (2, 0)], [(2, 1), (3, 0)]]


def test_the_video_verdict_ignores_a_one_frame_flicker_when_a_steady_track_exists() -> None:
    def track(track_id: int, probabilities: list[float]) -> Track:
        faces = [TrackFace(i, i / 2, box(0), Verdict(p, "authentic", 1 - p)) for i, p in enumerate(probabilities)]
        mean = sum(probabilities) / len(probabilities)
        return Track(track_id, faces, Verdict(mean, "authentic", 1 - mean), 0.0)

    info = VideoInfo("MP4/MOV", "h264", 64, 64, 2.0, 25.0, 2.0, [0.0, 0.5, 1.0])
    steady, flicker = track(0, [0.2, 0.3, 0.25]), track(1, [0.9])
    assert VideoVerdict(info, [steady, flicker], face_detected=True).most_suspicious is steady
    assert VideoVerdict(info, [flicker], face_detected=True).most_suspicious is flicker


class NoFaceDetector:
    """Stands in for `Detector` where only decoding is under test: finds no face, scores 0.5."""

    def __init__(self, metadata: ModelMetadata) -> None:
        self.metadata = metadata

    def regions(self, image: Image.Image) -> tuple[list[tuple[FaceBox | None, Image.Image]], bool]:
        return [(None, image)], False

    def predict(self, crops: list[Image.Image]) -> list[Verdict]:
        return [decide(0.5, self.metadata) for _ in crops]


def test_damaged_clips_either_decode_or_raise_a_video_error_never_anything_else(detector: Detector) -> None:
    """Seeded random byte flips and cuts of valid clips: damaged metadata, unknown codecs, broken frames."""
    decoder_only = cast(Detector, NoFaceDetector(detector.metadata))
    rng = random.Random(0)
    clips = [encode_clip(plain_frames(1, 4, size=(32, 32)), 4, container) for container in ("mp4", "avi", "webm")]
    outcomes = set()
    for _ in range(120):
        damaged = bytearray(rng.choice(clips))
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(16, len(damaged))]
        try:
            judge_video(bytes(damaged), decoder_only, LIMITS)
            outcomes.add("judged")
        except VideoError as error:
            outcomes.add(error.code)
    assert {"judged", "corrupt_video"} <= outcomes
