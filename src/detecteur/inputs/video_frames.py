"""Untrusted video bytes to frames: the container sniffed from its first bytes (FFmpeg is told which demuxer to use,
so only MP4/MOV, WebM/Matroska and AVI are ever parsed), its headers checked against the limits before decoding,
and frames sampled uniformly. PyAV (FFmpeg's libraries, bundled in its wheels) reads a file object, so nothing
reaches the file system or the network. Like `decode`, anything wrong with the bytes surfaces as a `VideoError`
subclass with a stable `code` and an `http_status`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from detecteur.inputs.decode import InputError

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
class Sample:
    time_s: float
    image: Image.Image


def open_container(stream: BinaryIO, demuxer: str) -> av.container.InputContainer:
    import av

    try:
        # The demuxer is named, so FFmpeg probes nothing else; a file object gives it no path or URL to follow.
        return av.open(stream, mode="r", format=demuxer, metadata_errors="replace")
    except av.FFmpegError as error:
        raise CorruptVideo(
            f"the file starts like a {CONTAINERS[demuxer]} video but cannot be read: {_reason(error)}"
        ) from error


def inspect_video(
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


def sample_frames(
    container: av.container.InputContainer,
    video_stream: av.video.VideoStream,
    info: VideoInfo,
    interval: float,
    limits: VideoLimits,
) -> Iterator[Sample]:
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
            yield Sample(time_s, image)
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
