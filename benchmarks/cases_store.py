"""The cases store's costs, on SQLite and on PostgreSQL 15 (a throw-away cluster, fsync on, started here):

- write overhead: `CaseStore.record` per check (seen-before lookup + insert + commit) on a table already holding
  `--cases` cases, with a realistic response (two faces) — target ≤ 3 ms p50; on PostgreSQL also with
  `synchronous_commit` off (`Settings.cases_synchronous_commit = False`: no WAL flush before the answer); and for
  bytes already judged `--repeated` times (a viral image, or a benchmark sending one face), whose seen-before
  lookup must not grow with that count;
- listing: `GET /v1/cases` through the real app (HTTP in-process, JSON included) over `--cases` cases, with each
  filter the dashboard uses and without — target ≤ 100 ms p95.

Beside wall-clock percentiles, each figure carries the CPU it cost per request or write, in this process (the app,
the HTTP client, SQLite) and in the PostgreSQL server's processes: on a shared machine load stretches the first,
not the second.

    .venv/bin/python benchmarks/cases_store.py [--cases 100000] [--repeats 40]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import Record, percentiles
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import insert
from tests.postgres import cluster_or_none

from detecteur.api.main import create_app
from detecteur.cases.models import SeenBefore
from detecteur.cases.store import CaseStore, NewCase, open_store
from detecteur.cases.tables import CaseRow
from detecteur.config import Settings
from detecteur.inference.engine import Detector

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERSIONS = ("0.6.0", "0.7.0", "0.8.0")
VERDICTS = ("authentic", "authentic", "synthetic", "borderline")


def response(n: int) -> dict[str, Any]:
    face = {"box": {"x": 66, "y": 63, "width": 175, "height": 175, "score": 0.95}, "fake_probability": 0.2}
    face |= {"verdict": "authentic", "confidence": 0.8, "heatmap_png": None}
    return {
        "filename": f"upload-{n}.jpg",
        "width": 1024,
        "height": 1024,
        "face_detected": True,
        "verdict": "authentic",
        "fake_probability": 0.2,
        "confidence": 0.8,
        "faces": [face, face],
        "timings": {"decode_ms": 5.1, "faces_ms": 20.3, "model_ms": 31.0, "total_ms": 57.2},
        "model_version": "0.8.0",
        "threshold": 0.5,
        "borderline_band": [0.4, 0.6],
    }


def fill(store: CaseStore, count: int) -> None:
    """`count` cases over 100 days, a third of them reviewed, 1 % with a repeated sha256 — in bulk."""
    rng = random.Random(0)
    decisions = (None, None, "confirmed_synthetic", "confirmed_authentic", "unsure", None)
    batch: list[dict[str, Any]] = []
    for n in range(count):
        verdict = rng.choice(VERDICTS)
        batch.append(
            {
                "created_at": T0 + timedelta(seconds=n * 86.4),
                "kind": "image",
                "sha256": hashlib.sha256(str(n if rng.random() > 0.01 else n % 50).encode()).hexdigest(),
                "size_bytes": 200_000 + n % 1000,
                "media_type": "image/jpeg",
                "filename": f"upload-{n}.jpg",
                "verdict": verdict,
                "fake_probability": rng.random(),
                "model_version": VERSIONS[min(2, n * 3 // count)],
                "response": response(n),
                "api_key_name": rng.choice(("newsroom", "trust-safety", "key-3")),
                "decision": rng.choice(decisions),
            }
        )
        if len(batch) == 5000:
            with store.engine.begin() as connection:
                connection.execute(insert(CaseRow), batch)
            batch = []
    if batch:
        with store.engine.begin() as connection:
            connection.execute(insert(CaseRow), batch)
    # The planner statistics a live database keeps (autovacuum on PostgreSQL): committed, or PostgreSQL rolls the
    # ANALYZE back with the transaction and plans on default guesses.
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE cases" if store.dialect == "postgresql" else "ANALYZE")


def server_cpu_seconds(data_dir: Path | None) -> float:
    """CPU seconds used so far by the PostgreSQL cluster whose data folder is `data_dir` (its postmaster and every
    backend it forked); 0 for SQLite, which works inside this process and shows in `time.process_time()`."""
    if data_dir is None:
        return 0.0
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == postmaster or int(fields[1]) == postmaster:  # fields[1]: the parent's pid
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Client (this process, every thread) + database server CPU over a span: load on the machine stretches
    wall-clock times, not the CPU a request costs."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.started = (time.process_time(), server_cpu_seconds(data_dir))

    def ms_per(self, count: int) -> dict[str, float]:
        client = (time.process_time() - self.started[0]) * 1000 / count
        server = (server_cpu_seconds(self.data_dir) - self.started[1]) * 1000 / count
        return {"cpu_ms_client": round(client, 2), "cpu_ms_server": round(server, 2)}


def checked_image(sha256: str, filename: str, n: int, api_key_name: str | None = None) -> NewCase:
    """A judged upload as the service records it."""
    return NewCase(
        kind="image",
        sha256=sha256,
        size_bytes=210_000,
        media_type="image/jpeg",
        filename=filename,
        verdict="authentic",
        fake_probability=0.2,
        model_version="0.8.0",
        response=response(n),
        api_key_name=api_key_name,
    )


def timed_records(
    store: CaseStore, cases: list[NewCase], data_dir: Path | None
) -> tuple[list[SeenBefore | None], dict[str, Any]]:
    """`record` each case in turn: what it says was seen before, and the times and CPU it took."""
    times, seen = [], []
    meter = CpuMeter(data_dir)
    for case in cases:
        started = time.perf_counter()
        seen.append(store.record(case)[1])
        times.append((time.perf_counter() - started) * 1000)
    return seen, {"writes": len(cases), **percentiles(times), **meter.ms_per(len(cases))}


def write_overhead(store: CaseStore, writes: int, data_dir: Path | None = None) -> dict[str, Any]:
    cases = [
        # Half are seen before.
        checked_image(hashlib.sha256(f"new-{n % (writes // 2)}".encode()).hexdigest(), f"new-{n}.jpg", n, "newsroom")
        for n in range(writes)
    ]
    return timed_records(store, cases, data_dir)[1]


def write_overhead_repeated(
    store: CaseStore, writes: int, earlier: int, data_dir: Path | None = None
) -> dict[str, Any]:
    """`record` of bytes already judged `earlier` times (those inserted in bulk first)."""
    sha = hashlib.sha256(b"judged again and again").hexdigest()
    rows = [
        {key: value for key, value in asdict(checked_image(sha, f"again-{n}.jpg", n)).items() if key != "image"}
        | {"created_at": T0 + timedelta(seconds=n)}
        for n in range(earlier)
    ]
    with store.engine.begin() as connection:
        connection.execute(insert(CaseRow), rows)
    cases = [checked_image(sha, f"again-{earlier + n}.jpg", n) for n in range(writes)]
    seen, figures = timed_records(store, cases, data_dir)
    assert [s.times if s is not None else 0 for s in seen] == [earlier + n for n in range(writes)]
    return {"earlier": earlier, **figures}


def failing_loader(settings: Settings) -> Detector:
    raise OSError("no model: this benchmark measures the cases routes only")


def listing(url: str, repeats: int, sha: str, data_dir: Path | None = None) -> dict[str, Any]:
    settings = Settings(model_path=Path("/nonexistent/model.safetensors"), database_url=SecretStr(url))
    queries = {
        "no filter": {},
        "verdict=synthetic": {"verdict": "synthetic"},
        "decision=none": {"decision": "none"},
        "decision=confirmed_synthetic": {"decision": "confirmed_synthetic"},
        "model_version=0.7.0": {"model_version": "0.7.0"},
        "date range (1 week)": {"since": "2026-02-01T00:00:00Z", "until": "2026-02-08T00:00:00Z"},
        "sha256": {"sha256": sha},
        "disagreements": {"disagreements": "true"},
        "verdict + model_version + date": {
            "verdict": "authentic",
            "model_version": "0.8.0",
            "since": "2026-03-10T00:00:00Z",
        },
        "page 20 (cursor), verdict=authentic": {"verdict": "authentic", "pages": 20},
    }
    results: dict[str, Any] = {}
    everything: list[float] = []
    with TestClient(create_app(settings, load_detector=failing_loader)) as client:
        deadline = time.monotonic() + 60
        while client.get("/v1/cases?limit=1").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for name, query in queries.items():
            params = {key: value for key, value in query.items() if key != "pages"}
            cursor = None
            for _ in range(int(query.get("pages", 1)) - 1):  # walk to the page, then time it
                cursor = client.get("/v1/cases", params=params | ({"cursor": cursor} if cursor else {})).json()[
                    "next_cursor"
                ]
            times = []
            meter = CpuMeter(data_dir)
            for _ in range(repeats):
                started = time.perf_counter()
                reply = client.get("/v1/cases", params=params | ({"cursor": cursor} if cursor else {}))
                times.append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, reply.text
            everything += times
            results[name] = {"returned": len(reply.json()["cases"]), **percentiles(times), **meter.ms_per(repeats)}
            print(f"  {name:40s} {results[name]}")
    results["all queries"] = percentiles(everything)
    return results


def run(url: str, count: int, repeats: int, repeated: int, data_dir: Path | None = None) -> dict[str, Any]:
    store = open_store(url)
    started = time.perf_counter()
    fill(store, count)
    print(f"  filled {count} cases in {time.perf_counter() - started:.1f} s")
    writes = write_overhead(store, 400, data_dir)
    print(f"  write overhead: {writes}")
    again = write_overhead_repeated(store, 200, repeated, data_dir)
    print(f"  write overhead, bytes judged {repeated} times before: {again}")
    store.close()
    results: dict[str, Any] = {"cases": count, "write_ms": writes, "write_ms_repeated_bytes": again}
    if store.dialect == "postgresql":  # the same writes, acknowledged before the WAL flush
        unflushed = open_store(url, synchronous_commit=False)
        results["write_ms_synchronous_commit_off"] = write_overhead(unflushed, 400, data_dir)
        print(f"  write overhead, synchronous_commit off: {results['write_ms_synchronous_commit_off']}")
        unflushed.close()
    results["list_ms"] = listing(url, repeats, hashlib.sha256(b"7").hexdigest(), data_dir)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--repeated", type=int, default=5000, help="earlier cases of the bytes written again")
    args = parser.parse_args()
    record = Record("cases_store", cases=args.cases, repeats=args.repeats, repeated=args.repeated, page_size=50)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        print("SQLite (WAL, synchronous=NORMAL)")
        results["sqlite"] = run(f"sqlite:///{folder}/cases.sqlite3", args.cases, args.repeats, args.repeated)
    with cluster_or_none(fsync=True) as cluster:
        if cluster is None:
            print("PostgreSQL not installed: skipped")
            results["postgresql"] = "skipped: PostgreSQL not installed"
        else:
            print("PostgreSQL (throw-away cluster, fsync on, synchronous_commit on)")
            results["postgresql"] = run(
                cluster.create_database("bench"), args.cases, args.repeats, args.repeated, cluster.data
            )
    record.write(results)


if __name__ == "__main__":
    main()
