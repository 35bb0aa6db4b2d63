"""The one conversion from the engine's verdicts (`ImageVerdict`, `VideoVerdict`) to the response shapes: the API
answers with them, and `detecteur predict --json` prints the same per-face and per-track records."""

from __future__ import annotations

import base64
from dataclasses import asdict

from detecteur.api.schemas import (
    Box,
    Evidence,
    FaceResult,
    ImageResult,
    SeriesPoint,
    StabilityResult,
    Timings,
    TrackFaceResult,
    TrackResult,
    VideoInfoResult,
    VideoResponse,
)
from detecteur.inference.engine import ImageVerdict
from detecteur.inference.evidence import evidence_report
from detecteur.inference.provenance import Provenance
from detecteur.inference.video import VideoVerdict
from detecteur.inputs.faces import FaceBox
from detecteur.model.file import ModelMetadata


def _box(box: FaceBox | None) -> Box | None:
    return Box(**asdict(box)) if box else None


def face_results(judged: ImageVerdict) -> list[FaceResult]:
    """Every judged region of an image: its box (none for the whole image), verdict, heatmap and stability."""
    return [
        FaceResult(
            box=_box(face.box),
            heatmap_png=base64.b64encode(face.heatmap_png).decode() if face.heatmap_png else None,
            stability=StabilityResult(**asdict(face.stability)) if face.stability else None,
            **asdict(face.verdict),
        )
        for face in judged.faces
    ]


def image_result(
    filename: str | None,
    size: tuple[int, int],
    judged: ImageVerdict,
    provenance: Provenance,
    timings: Timings,
) -> ImageResult:
    """An image's answer: its most suspicious face's verdict, every face, and the evidence lines."""
    top = judged.most_suspicious.verdict
    return ImageResult(
        filename=filename,
        width=size[0],
        height=size[1],
        face_detected=judged.face_detected,
        verdict=top.verdict,
        fake_probability=top.fake_probability,
        confidence=top.confidence,
        faces=face_results(judged),
        evidence=Evidence.model_validate(evidence_report(top, judged.face_detected, provenance)),
        timings=timings,
    )


def track_results(judged: VideoVerdict) -> list[TrackResult]:
    """Every face followed across a video's sampled frames, with its mean verdict and its face in each frame."""
    return [
        TrackResult(
            track_id=track.track_id,
            frames_seen=len(track.faces),
            first_s=track.faces[0].time_s,
            last_s=track.faces[-1].time_s,
            fake_probability=track.mean_fake_probability,
            fraction_over_threshold=track.fraction_over_threshold,
            verdict=track.verdict.verdict,
            confidence=track.verdict.confidence,
            faces=[
                TrackFaceResult(
                    sample=face.sample,
                    time_s=face.time_s,
                    box=_box(face.box),
                    fake_probability=face.verdict.fake_probability,
                )
                for face in track.faces
            ],
        )
        for track in judged.tracks
    ]


def video_response(
    filename: str | None, judged: VideoVerdict, metadata: ModelMetadata, total_ms: float
) -> VideoResponse:
    """A video's answer: its most suspicious track's verdict, every track, and each track's score over time."""
    info, top = judged.info, judged.most_suspicious
    series = [SeriesPoint(time_s=time_s, fake_probability={}) for time_s in info.sampled_times_s]
    for track in judged.tracks:
        for face in track.faces:
            series[face.sample].fake_probability[str(track.track_id)] = face.verdict.fake_probability
    return VideoResponse(
        model_version=metadata.version,
        threshold=metadata.threshold,
        borderline_band=metadata.borderline_band,
        filename=filename,
        video=VideoInfoResult(
            container=info.container,
            codec=info.codec,
            width=info.width,
            height=info.height,
            duration_s=info.duration_s,
            fps=info.fps,
            frames_sampled=info.frames_sampled,
            sample_fps=info.sample_fps,
        ),
        face_detected=judged.face_detected,
        verdict=top.verdict.verdict,
        fake_probability=top.mean_fake_probability,
        confidence=top.verdict.confidence,
        most_suspicious_track=top.track_id,
        tracks=track_results(judged),
        series=series,
        timings=Timings(
            decode_ms=judged.decode_ms, faces_ms=judged.faces_ms, model_ms=judged.model_ms, total_ms=total_ms
        ),
    )
