"""Tiny video clips made by the tests themselves, from the sample face photos."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import av
from PIL import Image

SAMPLES = Path(__file__).parent / "data" / "samples"
FACE = SAMPLES / "stylegan-ffhq-real-00006.jpg"
OTHER_FACE = SAMPLES / "stylegan-ffhq-fake-00ELJIYESN.jpg"
# (PyAV container format, codec): one per container the service accepts.
CONTAINER_CODECS = {"mp4": "mpeg4", "mov": "mpeg4", "avi": "mpeg4", "webm": "libvpx"}


def encode_clip(frames: Sequence[Image.Image], fps: int, container: str = "mp4") -> bytes:
    """The frames as a video file (`container` is a key of `CONTAINER_CODECS`)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(CONTAINER_CODECS[container], rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def moving_faces(
    seconds: float, fps: int, faces: Sequence[Path] = (FACE,), size: tuple[int, int] = (320, 180), face_side: int = 150
) -> list[Image.Image]:
    """Frames with each face in `faces` side by side, drifting right a few pixels a frame."""
    portraits = [Image.open(path).convert("RGB").resize((face_side, face_side)) for path in faces]
    frames = []
    for index in range(round(seconds * fps)):
        frame = Image.new("RGB", size, (40, 70, 100))
        for slot, portrait in enumerate(portraits):
            frame.paste(portrait, (slot * (face_side + 10) + 2 * index, (size[1] - face_side) // 2))
        frames.append(frame)
    return frames


def plain_frames(seconds: float, fps: int, size: tuple[int, int] = (160, 96)) -> list[Image.Image]:
    """Frames of slowly changing flat colour: a video with no face."""
    return [Image.new("RGB", size, (20 + 8 * index, 90, 140)) for index in range(round(seconds * fps))]
