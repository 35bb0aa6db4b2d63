"""Batch-scoring throughput, images/s, of `detecteur score` single-process vs Ray Data actors on a local Ray instance
limited to the same CPUs. Generates N distinct face images from the samples (crops, flips, rescales, JPEG qualities),
scores them both ways with the shipped model, and writes `benchmarks/results/score_throughput.json`.

    .venv/bin/python benchmarks/score_throughput.py [--images 200] [--cpus 2]

Wall times include loading the model (and, for Ray, starting the instance and its actors): that is what a user
waits for. On one machine Ray can only share out the same cores; its gain is that the same code spreads over the
CPUs of many machines.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from PIL import Image

from detecteur.config import Settings
from detecteur.inference.scoring import Limits, RayOptions, find_images, score_collection
from detecteur.model.networks import read_metadata

SAMPLES = Path("tests/data/samples")


def make_collection(root: Path, count: int, seed: int = 0) -> list[str]:
    generator = random.Random(seed)
    samples = sorted(SAMPLES.glob("*.jpg"))
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = Image.open(samples[index % len(samples)]).convert("RGB")
        side = min(image.size)
        crop = generator.randint(int(side * 0.8), side)
        left, top = generator.randint(0, image.width - crop), generator.randint(0, image.height - crop)
        image = image.crop((left, top, left + crop, top + crop)).resize((generator.randint(200, 400),) * 2)
        if generator.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=generator.randint(70, 95))
        (root / f"face-{index:05d}.jpg").write_bytes(buffer.getvalue())
    return find_images(str(root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to the local Ray instance")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/score_throughput.json"))
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")

    settings = Settings()
    limits = Limits(settings.max_upload_bytes, settings.max_pixels)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        paths = make_collection(Path(scratch) / "images", args.images)

        # torch's default (one intra-op thread per core), then one thread: on a busy machine the threads of one
        # matrix product wait for each other, and the default can be several times slower.
        default_threads = torch.get_num_threads()
        single = {}
        for threads in (default_threads, 1):
            torch.set_num_threads(threads)
            out = Path(scratch) / f"single-{threads}.parquet"
            summary = score_collection(paths, out, settings.model_path, limits, batch_size=args.batch_size)
            single[threads] = {
                "torch_threads": threads,
                "seconds": round(summary.seconds, 2),
                "images_per_second": round(summary.images_per_second, 2),
            }
        torch.set_num_threads(default_threads)

        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - started
        distributed = score_collection(
            paths,
            Path(scratch) / "ray.parquet",
            settings.model_path,
            limits,
            batch_size=args.batch_size,
            ray=RayOptions(workers=args.cpus),
        )
        ray.shutdown()

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_1min_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "model_version": read_metadata(settings.model_path).version,
        "images": args.images,
        "batch_size": args.batch_size,
        "single_process": single[default_threads],
        "single_process_one_thread": single[1],
        "ray_local": {
            "cpus": args.cpus,
            "actors": args.cpus,
            "torch_threads_per_actor": 1,
            "ray_init_seconds": round(ray_start, 2),
            "seconds": round(distributed.seconds, 2),
            "images_per_second": round(distributed.images_per_second, 2),
        },
        "note": (
            "Same cores both ways: Ray cannot add compute on one machine; it lets the same code use the CPUs of many "
            "machines. Wall times include model loading (and, for Ray, actor start, but not ray.init)."
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
