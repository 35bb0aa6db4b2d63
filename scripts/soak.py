"""Load and soak test: start the service on 127.0.0.1, send it thousands of mixed requests at a fixed concurrency,
and check that it stays healthy: no 5xx, no dropped connection, bounded memory growth.

The mix (seeded, so two runs send the same sequence): faces from `tests/data/samples` (to /v1/predict and the seed
route /predict), generated images without a face, and the hostile corpus of `scripts/make_hostile_corpus.py`
(every case small enough to repeat; the 21-25 MB uploads are left to the test suite). Every answer is checked against
what its case expects. Writes `benchmarks/results/soak.json` and exits 1 if a criterion fails. Usage:

    python -m scripts.soak                                  # 10 000 requests, concurrency 16 (`make soak`)
    python -m scripts.soak --requests 500 --out /tmp/soak.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from benchmarks.benchlib import Server, machine, percentiles
from PIL import Image
from scripts.make_hostile_corpus import REPO, HostileRequest, cases, encoded, send, upload

from detecteur.config import Settings
from detecteur.files import atomic_write_text

HOST = "127.0.0.1"  # never another interface: the soak server must not be reachable from outside
MAX_RSS_GROWTH = 0.10
WARM_UP_FRACTION = 0.05


@dataclass(frozen=True)
class SoakRequest:
    kind: str  # face | no_face | hostile
    name: str
    request: HostileRequest
    status: int  # expected status and error code (None for a judged image)
    code: str | None


def request_pool() -> list[SoakRequest]:
    faces = sorted((REPO / "tests" / "data" / "samples").glob("*.jpg"))
    pool = [SoakRequest("face", path.name, upload(path.read_bytes(), filename=path.name), 200, None) for path in faces]
    pool += [
        SoakRequest("face", f"seed-route/{path.name}", upload(path.read_bytes(), "/predict", path.name), 200, None)
        for path in faces[:3]
    ]
    rng = np.random.default_rng(0)
    no_faces = {
        "grey-640x480.jpg": Image.new("RGB", (640, 480), (128, 128, 128)),
        "noise-320x240.png": Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)),
        "gradient-800x600.jpg": Image.fromarray(
            np.broadcast_to(np.linspace(0, 255, 800, dtype=np.uint8)[None, :, None], (600, 800, 3)).copy()
        ),
        "stripes-256x256.webp": Image.fromarray(
            ((np.indices((256, 256)).sum(axis=0) // 16 % 2) * 255).astype(np.uint8)
        ),
    }
    for name, image in no_faces.items():
        image_format = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[name.rsplit(".", 1)[1]]
        pool.append(SoakRequest("no_face", name, upload(encoded(image, image_format), filename=name), 200, None))
    pool += [SoakRequest("hostile", case.name, case.build(), case.status, case.code) for case in cases() if case.soak]
    return pool


def mixed_sequence(pool: list[SoakRequest], count: int, seed: int = 0) -> list[SoakRequest]:
    """`count` requests: half faces, a fifth without a face, the rest hostile."""
    by_kind = {kind: [item for item in pool if item.kind == kind] for kind in ("face", "no_face", "hostile")}
    rng = random.Random(seed)
    kinds = rng.choices(["face", "no_face", "hostile"], weights=[0.5, 0.2, 0.3], k=count)
    return [rng.choice(by_kind[kind]) for kind in kinds]


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {}
    return percentiles(values_ms) | {"max": round(max(values_ms), 1)}


def run(requests: int, concurrency: int, out: Path, model: Path | None) -> bool:
    pool = request_pool()
    sequence = mixed_sequence(pool, requests)
    log_path = Path(tempfile.mkdtemp(prefix="detecteur-soak-")) / "server.log"
    env = {"DETECTEUR_MODEL_PATH": str(model)} if model is not None else {}
    with Server(env, timeout_s=300, log_path=log_path) as server:
        port = server.port
        rss_ready = server.rss_mib()
        print(f"server ready in {server.ready_s:.1f} s on {HOST}:{port}, RSS {rss_ready:.0f} MiB; log {log_path}")

        lock = threading.Lock()
        statuses: Counter[str] = Counter()
        unexpected: Counter[str] = Counter()
        dropped: list[str] = []
        latencies: dict[str, list[float]] = {"face": [], "no_face": [], "hostile": []}
        rss_samples: list[tuple[int, float]] = []
        done = 0
        warm_up = max(1, int(requests * WARM_UP_FRACTION))
        rss_after_warm_up = rss_ready

        def one(item: SoakRequest) -> None:
            nonlocal done, rss_after_warm_up
            started = time.perf_counter()
            outcome = send(item.request, HOST, port, timeout=120)
            elapsed_ms = (time.perf_counter() - started) * 1000
            expected = outcome.status == item.status and outcome.code == item.code
            with lock:
                done += 1
                statuses[str(outcome.status)] += 1
                latencies[item.kind].append(elapsed_ms)
                if outcome.connection_error:
                    dropped.append(f"{item.name}: {outcome.connection_error}")
                elif not expected:
                    unexpected[f"{item.name}: {outcome.status} {outcome.code}"] += 1
                if done == warm_up:
                    rss_after_warm_up = server.rss_mib()
                if done % 250 == 0:
                    rss_samples.append((done, server.rss_mib()))
                if done % 500 == 0:
                    rate = done / (time.monotonic() - soak_started)
                    print(f"{done}/{requests} requests, {rate:.1f}/s, 5xx so far {count_5xx(statuses)}", flush=True)

        soak_started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as workers:
            list(workers.map(one, sequence))
        duration = time.monotonic() - soak_started
        rss_end = server.rss_mib()
        health_after = send(HostileRequest("GET", "/health", {}), HOST, port).status

    growth = (rss_end - rss_after_warm_up) / rss_after_warm_up
    all_latencies = [value for values in latencies.values() for value in values]
    criteria = {
        "no_5xx": count_5xx(statuses) == 0,
        "no_dropped_connections": not dropped,
        "every_answer_as_expected": not unexpected,
        f"rss_growth_after_warm_up_at_most_{MAX_RSS_GROWTH:.0%}": growth <= MAX_RSS_GROWTH,
        "health_200_after": health_after == 200,
    }
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": str(model or Settings().model_path),
        "requests": requests,
        "concurrency": concurrency,
        "mix": dict(Counter(item.kind for item in sequence)),
        "duration_s": round(duration, 1),
        "requests_per_s": round(requests / duration, 2),
        "statuses": dict(sorted(statuses.items())),
        "count_5xx": count_5xx(statuses),
        "dropped_connections": len(dropped),
        "dropped_examples": dropped[:10],
        "unexpected_answers": dict(unexpected.most_common(20)),
        "latency_ms": {"all": latency_summary(all_latencies)}
        | {kind: latency_summary(values) for kind, values in latencies.items()},
        "rss_mib": {
            "ready": rss_ready,
            f"after_warm_up_{warm_up}_requests": rss_after_warm_up,
            "end": rss_end,
            "max_sampled": max([rss for _, rss in rss_samples] + [rss_end]),
            "growth_after_warm_up": round(growth, 4),
            "growth_from_ready": round((rss_end - rss_ready) / rss_ready, 4),
            "samples_every_250": [rss for _, rss in rss_samples],
        },
        "health_after": health_after,
        "criteria": criteria,
        "passed": all(criteria.values()),
    }
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    summary = {key: result[key] for key in ("duration_s", "statuses", "count_5xx", "dropped_connections", "passed")}
    print(json.dumps(summary | {"latency_ms": result["latency_ms"]["all"], "rss": result["rss_mib"]}, indent=2))
    print(f"written {out}")
    return bool(result["passed"])


def count_5xx(statuses: Counter[str]) -> int:
    return sum(count for status, count in statuses.items() if status.startswith("5"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "soak.json")
    arguments = parser.parse_args()
    sys.exit(0 if run(arguments.requests, arguments.concurrency, arguments.out, arguments.model) else 1)


if __name__ == "__main__":
    main()
