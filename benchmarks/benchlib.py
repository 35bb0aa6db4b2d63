"""What every benchmark shares: the test images, percentiles, the machine and load record, writing results.

Benchmarks run as scripts from the repository root (`.venv/bin/python benchmarks/<name>.py`); each prints its
figures and writes `benchmarks/results/<name>.json`. The machine is shared (other jobs, a low-priority training
run): every result records `os.getloadavg()` before and after, so a reader can tell a quiet run from a busy one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SAMPLES = ROOT / "tests" / "data" / "samples"
FACE_SAMPLE = SAMPLES / "stylegan-ffhq-real-00006.jpg"
JPEG_QUALITY = 90


# Issue 22's targets (2 cores, ratios measured in one run): `serving_ratios.py` checks them, `speed_table.py` prints
# them and the floors under them.
SERVING_TARGETS = {
    "e2e_p50_over_seed_forward_max": 0.5,
    "c8_windows_per_s_over_ort_batch32_min": 0.85,
    "rss_at_ready_mib_max": 250.0,
    "cold_start_s_max": 1.5,
}


def face_jpeg(side: int) -> bytes:
    """The sample face resampled to side×side, JPEG q90: a face photo of that size."""
    image = Image.open(FACE_SAMPLE).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def percentiles(values_ms: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    if not values_ms:
        return {f"p{point}": float("nan") for point in points}
    return {f"p{point}": round(float(np.percentile(values_ms, point)), 2) for point in points}


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0))


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": cpu_cores(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


class Record:
    """Start a benchmark record (date, machine, load); `write` adds the load at the end and saves it."""

    def __init__(self, name: str, **settings: Any) -> None:
        self.name = name
        self.data: dict[str, Any] = {
            "benchmark": name,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "machine": machine(),
            "shared_machine_note": "taken on a shared machine (other jobs and a nice-15 training run)",
            "loadavg_start": [round(value, 2) for value in os.getloadavg()],
            "settings": settings,
        }
        self.started = time.perf_counter()

    def write(self, results: dict[str, Any]) -> Path:
        self.data["loadavg_end"] = [round(value, 2) for value in os.getloadavg()]
        self.data["duration_s"] = round(time.perf_counter() - self.started, 1)
        self.data["results"] = results
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(self.data, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
        return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc (load-independent work measure)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """`detecteur serve` in a child process on a free loopback port; `ready_s` is process start → /health 200."""

    def __init__(
        self, env: dict[str, str] | None = None, timeout_s: float = 180.0, log_path: Path | None = None
    ) -> None:
        import httpx

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        started = time.perf_counter()
        # Never another interface: a benchmark's server must not be reachable from outside this machine.
        server_env = os.environ | {"GLOG_minloglevel": "2"} | (env or {}) | {"DETECTEUR_HOST": "127.0.0.1"}
        # The child keeps its own copy of the log's file descriptor; ours can close as soon as it has started.
        with log_path.open("wb") if log_path is not None else contextlib.nullcontext(subprocess.DEVNULL) as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "detecteur", "serve", "--port", str(self.port)],
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env=server_env,
            )
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if self.process.poll() is not None:
                    raise SystemExit(f"the server exited with {self.process.returncode} before it was ready")
                if time.perf_counter() - started > timeout_s:
                    self.stop()
                    raise SystemExit(f"the server was not ready after {timeout_s:.0f} s")
                time.sleep(0.02)
        self.ready_s = round(time.perf_counter() - started, 2)

    def rss_mib(self) -> float:
        return rss_mib(self.process.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
