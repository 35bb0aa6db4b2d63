"""Video: sample frames uniformly, find the faces in each, follow every face across frames as a track, and
judge each track with the same `Detector` as still images.

Decoding uses PyAV (FFmpeg's libraries, bundled in its wheels) on a file object, so nothing reaches the file
system or the network. The container is sniffed from its first bytes and FFmpeg is told which demuxer to use:
only MP4/MOV, WebM/Matroska and AVI are ever parsed. Like `imaging`, anything wrong with the bytes surfaces as a
`VideoError` subclass with a stable `code` and an `http_status`.

A track's score is the mean calibrated fake probability of its faces, turned into a verdict by the model's own
threshold and borderline band (`engine.decide`); a video is as suspicious as its most suspicious track. When no
frame has a face, the whole frames are judged as one track without boxes and `face_detected` is false — the
image path's rule.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from detecteur.inference.engine import Detector, Verdict, decide
from detecteur.inputs.decode import InputError
from detecteur.inputs.faces import FaceBox

if TYPE_CHECKING:
    import av.container
    import av.video

    from detecteur.config import Settings

# FFmpeg demuxer → the name people know the container by.
CONTAINERS: dict[str, str] = {"mov": "MP4/MOV", "matroska": "WebM/Matroska", "avi": "AVI"}
ACCEPTED_LIST = "send an MP4, MOV, WebM or AVI video"
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})
# Top-level boxes a QuickTime file may start with; MP4 and newer MOV files start with `ftyp`.
_ISO_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
# Faces in consecutive samples belong to one track when their boxes overlap at least this much. Samples are
# ~0.5 s apart at the default rate; a talking head moves far less than its own width in that time.
MIN_TRACK_IOU = 0.3
# A track seen in a single sample is most often a detector flicker (a face-like pattern for one frame): it gets
# its own verdict, but the video's verdict comes from tracks seen at least this often when there are any.
MIN_TRACK_SAMPLES_FOR_VIDEO_VERDICT = 2
# Bounds decoding work whatever the container claims: a 120 s clip at 120 fps decodes 14 400 frames at most.
MAX_DECODED_FPS = 120
# Frame timestamps may run a little past the duration in the header (rounding, B-frame reordering).
DURATION_TOLERANCE_S = 1.0


class VideoError(InputError):
    """The uploaded bytes are not a video this service accepts."""

    code = "invalid_video"


class EmptyVideo(VideoError):
    code = "empty_file"
    http_status = 400


class UnsupportedVideo(VideoError):
    """Not a video, or a container outside `CONTAINERS`."""

    code = "unsupported_format"
    http_status = 415


class CorruptVideo(VideoError):
    """An accepted container, but truncated, damaged, without a video stream or without a decodable frame."""

    code = "corrupt_video"
    http_status = 422


class VideoTooLong(VideoError):
    code = "video_too_long"
    http_status = 413


class VideoTooLarge(VideoError):
    """Frames with more pixels than the limit, seen from the stream header before decoding."""

    code = "too_many_pixels"
    http_status = 413


@dataclass(frozen=True)
class VideoLimits:
    """How to sample and what to refuse; `from_settings` is the one source of the numbers."""

    sample_fps: float
    max_frames: int
    max_seconds: float
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoLimits:
        return cls(
            sample_fps=settings.video_sample_fps,
            max_frames=settings.video_max_frames,
            max_seconds=settings.video_max_seconds,
            max_pixels=settings.max_pixels,
        )


@dataclass(frozen=True)
class VideoInfo:
    container: str
    codec: str
    width: int  # as displayed, after the container's rotation
    height: int
    duration_s: float
    fps: float | None  # the stream's average frame rate, when the container says
    sample_fps: float  # samples per second: `VideoLimits.sample_fps`, or fewer when a long clip hit the cap
    sampled_times_s: list[float]  # time of each sampled frame from the first frame

    @property
    def frames_sampled(self) -> int:
        return len(self.sampled_times_s)


@dataclass(frozen=True)
class TrackFace:
    """One face of a track in one sampled frame."""

    sample: int  # index into `VideoInfo.sampled_times_s`
    time_s: float
    box: FaceBox | None  # None when the whole frame was judged
    verdict: Verdict


@dataclass(frozen=True)
class Track:
    """One person followed across frames."""

    track_id: int
    faces: list[TrackFace]
    verdict: Verdict  # `decide` on the mean calibrated fake probability of `faces`
    fraction_over_threshold: float  # share of `faces` at or above the model's threshold

    @property
    def mean_fake_probability(self) -> float:
        return self.verdict.fake_probability


@dataclass(frozen=True)
class VideoVerdict:
    info: VideoInfo
    tracks: list[Track]
    face_detected: bool
    decode_ms: float = 0.0  # demuxing, decoding and converting the sampled frames
    faces_ms: float = 0.0  # face detection and cropping
    model_ms: float = 0.0  # preprocessing and the model, all crops of the video in batches

    @property
    def most_suspicious(self) -> Track:
        """The video's verdict: its most suspicious track among those seen in at least
        `MIN_TRACK_SAMPLES_FOR_VIDEO_VERDICT` samples (every track when none is)."""
        steady = [track for track in self.tracks if len(track.faces) >= MIN_TRACK_SAMPLES_FOR_VIDEO_VERDICT]
        return max(steady or self.tracks, key=lambda track: track.mean_fake_probability)


def sniff_container(head: bytes) -> str | None:
    """The FFmpeg demuxer for a file starting with `head` (16 bytes are enough), or None if not a video we take."""
    if head[4:8] in _ISO_FIRST_BOXES:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    return None


def is_video_file(path: Path) -> bool:
    """Whether `path` is a video by its content (or, if unreadable, by its extension)."""
    try:
        with path.open("rb") as handle:
            return sniff_container(handle.read(16)) is not None
    except OSError:
        return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class _Sample:
    time_s: float
    image: Image.Image


def judge_video(source: bytes | Path, detector: Detector, limits: VideoLimits) -> VideoVerdict:
    """Sample `source` (the bytes of an upload, or a file) uniformly, judge every face in every sampled frame and
    follow faces across frames. Raises a `VideoError` subclass for anything wrong with the video."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return _judge_stream(handle, detector, limits)
    if not source:
        raise EmptyVideo("the file is empty; send a video")
    return _judge_stream(io.BytesIO(source), detector, limits)


def _judge_stream(stream: BinaryIO, detector: Detector, limits: VideoLimits) -> VideoVerdict:
    head = stream.read(16)
    stream.seek(0)
    if not head:
        raise EmptyVideo("the file is empty; send a video")
    demuxer = sniff_container(head)
    if demuxer is None:
        raise UnsupportedVideo(f"the file is not a video in a supported container; {ACCEPTED_LIST}")

    started = time.perf_counter()
    frame_regions: list[list[tuple[FaceBox | None, Image.Image]]] = []
    faces_seconds = 0.0
    any_face = False
    with _open(stream, demuxer) as container:
        video_stream, info = _inspect(container, demuxer, limits)
        interval = sampling_interval(info.duration_s, limits)
        sampled_times: list[float] = []
        display_size = (info.width, info.height)
        for sample in _sample_frames(container, video_stream, info, interval, limits):
            sampled_times.append(sample.time_s)
            display_size = sample.image.size
            detecting = time.perf_counter()
            regions, face_detected = detector.regions(sample.image)
            faces_seconds += time.perf_counter() - detecting
            frame_regions.append(regions if face_detected else [(None, regions[0][1])])
            any_face = any_face or face_detected
    decoded = time.perf_counter()
    if not sampled_times:
        raise CorruptVideo(f"no frame of the {info.container} video could be decoded")
    info = VideoInfo(
        info.container,
        info.codec,
        *display_size,
        max(info.duration_s, sampled_times[-1]),
        info.fps,
        1.0 / interval,
        sampled_times,
    )

    # With a face anywhere, frames without one are left out rather than judged whole: a whole-frame score is
    # not a score of the person. With no face at all, every frame is judged whole, as images are.
    boxes_per_frame = [[box for box, _ in regions if box is not None] for regions in frame_regions]
    if any_face:
        links = link_tracks(boxes_per_frame)
        crops = [frame_regions[sample][index][1] for track in links for sample, index in track]
    else:
        links = [[(sample, 0) for sample in range(len(frame_regions))]]
        crops = [regions[0][1] for regions in frame_regions]
    modelling = time.perf_counter()
    verdicts = iter(detector.predict(crops))
    finished = time.perf_counter()

    tracks = []
    for track_id, track in enumerate(links):
        faces = [
            TrackFace(
                sample,
                sampled_times[sample],
                boxes_per_frame[sample][index] if any_face else None,
                next(verdicts),
            )
            for sample, index in track
        ]
        tracks.append(_aggregate(track_id, faces, detector))
    return VideoVerdict(
        info,
        tracks,
        face_detected=any_face,
        decode_ms=(decoded - started - faces_seconds) * 1000,
        faces_ms=faces_seconds * 1000,
        model_ms=(finished - modelling) * 1000,
    )


def _aggregate(track_id: int, faces: list[TrackFace], detector: Detector) -> Track:
    probabilities = [face.verdict.fake_probability for face in faces]
    mean = sum(probabilities) / len(probabilities)
    over = sum(probability >= detector.metadata.threshold for probability in probabilities)
    return Track(track_id, faces, decide(mean, detector.metadata), over / len(probabilities))


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    intersection = width * height
    return intersection / (a.width * a.height + b.width * b.height - intersection)


def link_tracks(
    boxes_per_frame: Sequence[Sequence[FaceBox]], min_iou: float = MIN_TRACK_IOU
) -> list[list[tuple[int, int]]]:
    """Follow faces across frames: each track is a list of (frame, box index in that frame), ordered by first
    appearance. A box joins the track whose last box it overlaps most (IoU ≥ `min_iou`), best pairs first, one
    box per track per frame; a track missing from some frames picks up again where it was last seen."""
    tracks: list[list[tuple[int, int]]] = []
    last_boxes: list[FaceBox] = []
    for frame, boxes in enumerate(boxes_per_frame):
        pairs = sorted(
            (
                (overlap, track, index)
                for track, last in enumerate(last_boxes)
                for index, box in enumerate(boxes)
                if (overlap := iou(last, box)) >= min_iou
            ),
            reverse=True,
        )
        taken_tracks: set[int] = set()
        taken_boxes: set[int] = set()
        for _, track, index in pairs:
            if track in taken_tracks or index in taken_boxes:
                continue
            taken_tracks.add(track)
            taken_boxes.add(index)
            tracks[track].append((frame, index))
            last_boxes[track] = boxes[index]
        for index, box in enumerate(boxes):
            if index not in taken_boxes:
                tracks.append([(frame, index)])
                last_boxes.append(box)
    return tracks


def _open(stream: BinaryIO, demuxer: str) -> av.container.InputContainer:
    import av

    try:
        # The demuxer is named, so FFmpeg probes nothing else; a file object gives it no path or URL to follow.
        return av.open(stream, mode="r", format=demuxer, metadata_errors="replace")
    except av.FFmpegError as error:
        raise CorruptVideo(
            f"the file starts like a {CONTAINERS[demuxer]} video but cannot be read: {_reason(error)}"
        ) from error


def _inspect(
    container: av.container.InputContainer, demuxer: str, limits: VideoLimits
) -> tuple[av.video.VideoStream, VideoInfo]:
    """The first video stream and what its headers say, checked against the limits before decoding."""
    name = CONTAINERS[demuxer]
    if not container.streams.video:
        raise CorruptVideo(f"the {name} file has no video stream")
    video_stream = container.streams.video[0]
    context = video_stream.codec_context
    if context is None:
        raise CorruptVideo(f"the video stream of the {name} file has a codec that cannot be decoded")
    width, height = context.width, context.height
    if width <= 0 or height <= 0:
        raise CorruptVideo(f"the {name} video stream does not say its frame size")
    _check_pixels(width, height, limits)
    duration_s = _header_duration(container, video_stream)
    _check_duration(duration_s, limits)
    fps = float(video_stream.average_rate) if video_stream.average_rate else None
    return video_stream, VideoInfo(name, context.name, width, height, duration_s or 0.0, fps, limits.sample_fps, [])


def _check_pixels(width: int, height: int, limits: VideoLimits) -> None:
    if width * height > limits.max_pixels:
        raise VideoTooLarge(f"frames are {width}×{height} = {width * height} pixels; the limit is {limits.max_pixels}")


def _header_duration(container: av.container.InputContainer, video_stream: av.video.VideoStream) -> float | None:
    if video_stream.duration is not None and video_stream.time_base is not None:
        return float(video_stream.duration * video_stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _check_duration(duration_s: float | None, limits: VideoLimits, tolerance: float = 0.0) -> None:
    if duration_s is not None and duration_s > limits.max_seconds + tolerance:
        raise VideoTooLong(f"the video lasts {duration_s:.1f} s; the limit is {limits.max_seconds:g} s")


def sampling_interval(duration_s: float, limits: VideoLimits) -> float:
    """Seconds between samples: 1/`sample_fps`, or wider when that would give more than `max_frames` over
    `duration_s` (0 when the container does not say: then the cap simply ends sampling)."""
    interval = 1.0 / limits.sample_fps
    if duration_s / interval > limits.max_frames:
        interval = duration_s / limits.max_frames
    return interval


def _sample_frames(
    container: av.container.InputContainer,
    video_stream: av.video.VideoStream,
    info: VideoInfo,
    interval: float,
    limits: VideoLimits,
) -> Iterator[_Sample]:
    """The first frame at or after each multiple of `interval` seconds, `max_frames` at most."""
    import av

    video_stream.thread_type = "AUTO"  # frame and slice threads: decoding every frame is the bulk of the work
    first_time: float | None = None
    next_time = 0.0
    sampled = decoded = 0
    max_decoded = int(limits.max_seconds * MAX_DECODED_FPS) + 1
    try:
        for frame in container.decode(video_stream):
            decoded += 1
            if decoded > max_decoded:
                raise VideoTooLong(
                    f"the video has more than {max_decoded} frames; the limit is {limits.max_seconds:g} s "
                    f"at up to {MAX_DECODED_FPS} frames per second"
                )
            if frame.time is None:
                time_s = (decoded - 1) / (info.fps or limits.sample_fps)
            else:
                first_time = frame.time if first_time is None else first_time
                time_s = frame.time - first_time
            # Headers can lie about the duration and the frame size; the frames cannot.
            _check_duration(time_s, limits, tolerance=DURATION_TOLERANCE_S)
            _check_pixels(frame.width, frame.height, limits)
            if time_s + 1e-6 < next_time:
                continue
            while next_time <= time_s + 1e-6:
                next_time += interval
            image = Image.fromarray(frame.to_ndarray(format="rgb24"))
            if frame.rotation:
                image = image.rotate(frame.rotation, expand=True)
            yield _Sample(time_s, image)
            sampled += 1
            if sampled >= limits.max_frames:
                return
    except av.FFmpegError as error:
        raise CorruptVideo(
            f"the {info.container} video data is damaged and cannot be decoded: {_reason(error)}"
        ) from error


def _reason(error: Exception) -> str:
    strerror = getattr(error, "strerror", None)
    return str(strerror or error)
