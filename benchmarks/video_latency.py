"""End-to-end latency of `POST /v1/predict/video` on a 10 s 720p clip at the default sampling (target: ≤ 3 s on
2 cores). Encodes the clip itself (H.264, 30 fps, one sample face drifting across a 1280×720 frame), starts
`detecteur serve` on a free loopback port, waits for `/health`, posts the clip N times at concurrency 1 and prints
the client-side latency and the server's stage timings. The machine may be shared: the load average before and
after is recorded with the figures. On a loaded machine PyTorch's intra-op threads wait on each other, so the
server is also run with one torch thread (`OMP_NUM_THREADS=1`) for comparison. Writes
`benchmarks/results/video_latency.json`.

    .venv/bin/python benchmarks/video_latency.py [--requests 5] [--seconds 10] [--face PATH] [--torch-threads default 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx
from benchlib import Server
from PIL import Image

WIDTH, HEIGHT, FPS = 1280, 720, 30
TARGET_S = 3.0


def encode_clip(face: Path, seconds: float) -> bytes:
    """H.264 in MP4, yuv420p: what a phone or a download gives. The face is 400 px, moving 2 px a frame."""
    portrait = Image.open(face).convert("RGB").resize((400, 400), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(round(seconds * FPS)):
            frame = Image.new("RGB", (WIDTH, HEIGHT), (60, 80, 110))
            frame.paste(portrait, (200 + 2 * index, 160))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def measure(clip: bytes, requests: int, torch_threads: str) -> dict[str, object]:
    """Start a server (with `torch_threads` torch threads, or PyTorch's default), post `clip` `requests` times."""
    env = {} if torch_threads == "default" else {"OMP_NUM_THREADS": torch_threads}
    load_before = os.getloadavg()
    with Server(env, timeout_s=120) as server, httpx.Client(base_url=server.base_url, timeout=120) as client:
        client_s: list[float] = []
        stages: dict[str, list[float]] = {"decode_ms": [], "faces_ms": [], "model_ms": [], "total_ms": []}
        for _ in range(requests):
            sent = time.perf_counter()
            response = client.post("/v1/predict/video", files={"file": ("clip.mp4", clip, "video/mp4")})
            client_s.append(time.perf_counter() - sent)
            response.raise_for_status()
            body = response.json()
            for key, value in body["timings"].items():
                stages[key].append(value)
        model_version = client.get("/health").json()["model_version"]
    median_s = statistics.median(client_s)
    return {
        "torch_threads": torch_threads,
        "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
        "model_version": model_version,
        "video": body["video"],
        "tracks": len(body["tracks"]),
        "client_s": {"median": median_s, "min": min(client_s), "max": max(client_s)},
        "server_ms_median": {key: statistics.median(values) for key, values in stages.items()},
        "target_met": median_s <= TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--face", type=Path, default=Path("tests/data/samples/stylegan-ffhq-real-00006.jpg"))
    parser.add_argument("--torch-threads", nargs="+", default=["default", "1"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/video_latency.json"))
    args = parser.parse_args()

    clip = encode_clip(args.face, args.seconds)
    runs = [measure(clip, args.requests, threads) for threads in args.torch_threads]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "clip": {
            "codec": "h264",
            "width": WIDTH,
            "height": HEIGHT,
            "fps": FPS,
            "seconds": args.seconds,
            "bytes": len(clip),
            "face": str(args.face),
        },
        "requests_per_run": args.requests,
        "target_s": TARGET_S,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
