"""Video: sample frames uniformly, find the faces in each, follow every face across frames as a track, and
judge each track with the same `Detector` as still images.

Decoding, sniffing and the limits are `inputs/video_frames.py`'s: anything wrong with the bytes surfaces as a
`VideoError` subclass with a stable `code` and an `http_status`.

A track's score is the mean calibrated fake probability of its faces, turned into a verdict by the model's own
threshold and borderline band (`engine.decide`); a video is as suspicious as its most suspicious track. When no
frame has a face, the whole frames are judged as one track without boxes and `face_detected` is false — the
image path's rule.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from detecteur.inference.engine import Detector, Verdict, decide
from detecteur.inputs.faces import FaceBox
from detecteur.inputs.video_frames import (
    ACCEPTED_LIST,
    CorruptVideo,
    EmptyVideo,
    UnsupportedVideo,
    VideoInfo,
    VideoLimits,
    inspect_video,
    open_container,
    sample_frames,
    sampling_interval,
    sniff_container,
)

if TYPE_CHECKING:
    pass

# Faces in consecutive samples belong to one track when their boxes overlap at least this much. Samples are
# ~0.5 s apart at the default rate; a talking head moves far less than its own width in that time.
MIN_TRACK_IOU = 0.3
# A track seen in a single sample is most often a detector flicker (a face-like pattern for one frame): it gets
# its own verdict, but the video's verdict comes from tracks seen at least this often when there are any.
MIN_TRACK_SAMPLES_FOR_VIDEO_VERDICT = 2


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
    with open_container(stream, demuxer) as container:
        video_stream, info = inspect_video(container, demuxer, limits)
        interval = sampling_interval(info.duration_s, limits)
        sampled_times: list[float] = []
        display_size = (info.width, info.height)
        for sample in sample_frames(container, video_stream, info, interval, limits):
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
