"""`detecteur serve` as a real process, and a load generator that classifies every request it sends — for the tests
of SIGKILL, reload and drain (tests/test_operations.py) and the load figures (benchmarks/operations_load.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import detecteur
from tests.postgres import free_port


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def running_service(model: Path, workdir: Path, **environment: str) -> Iterator[Service]:
    """`python -m detecteur serve` on a free port with `DETECTEUR_*` settings from `environment`; ready on return."""
    port = free_port()
    env = os.environ | {"DETECTEUR_PORT": str(port), "DETECTEUR_DASHBOARD_DIR": str(workdir / "no-dashboard")}
    env |= {f"DETECTEUR_{name.upper()}": value for name, value in environment.items()}
    # The package the tests import, whatever the working directory (an editable install may resolve by it).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(detecteur.__file__).parents[1]), env.get("PYTHONPATH")]))
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "detecteur", "serve", "--model", str(model)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    service = Service(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"the server exited ({process.returncode}):\n{service.output()}"
            assert time.monotonic() < deadline, f"the server never became ready:\n{service.output()}"
            try:
                ready = httpx.get(f"{service.url}/health", timeout=2).status_code == 200
                if ready and httpx.get(f"{service.url}/v1/cases?limit=1", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@dataclass
class LoadResult:
    """Every request sent and how it ended: `ok` (200), `refused` (503 shutting_down + Retry-After, or a connection
    refused once the server stopped listening: never accepted), `failed` (anything else: an error status, a reset
    or a cut connection — a lost request)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, detail: str = "", answer: dict[str, Any] | None = None, ms: float = 0.0) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == "failed":
                self.failures.append(detail)
            if answer is not None:
                self.answers.append(answer)
                self.latencies_ms.append(ms)

    @property
    def failed(self) -> int:
        return self.outcomes["failed"]


class Load:
    """`concurrency` clients, each sending `images` in turn to /v1/predict until `stop()` (or until the server
    refuses it: a client told 503 shutting_down or refused a connection stops, as a load balancer would)."""

    def __init__(self, url: str, images: list[bytes], concurrency: int = 8, headers: dict[str, str] | None = None):
        self.url, self.images, self.headers = url, images, headers or {}
        self.result = LoadResult()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(concurrency)]

    def _client(self, number: int) -> None:
        with httpx.Client(base_url=self.url, timeout=120, headers=self.headers) as client:
            sent = number
            while not self._stop.is_set():
                data = self.images[sent % len(self.images)]
                sent += 1
                started = time.perf_counter()
                try:
                    response = client.post("/v1/predict", files={"file": ("image.jpg", data, "image/jpeg")})
                except httpx.ConnectError:
                    self.result.add("refused")
                    return
                except httpx.HTTPError as error:
                    self.result.add("failed", f"{type(error).__name__}: {error}")
                    continue
                ms = (time.perf_counter() - started) * 1000
                if response.status_code == 200:
                    body = response.json()
                    self.result.add("ok", answer=body["results"][0] | {"model_version": body["model_version"]}, ms=ms)
                elif (
                    response.status_code == 503
                    and response.json()["error"]["code"] == "shutting_down"
                    and response.headers.get("retry-after")
                ):
                    self.result.add("refused")
                    return
                else:
                    self.result.add("failed", f"{response.status_code}: {response.text[:200]}")

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, answered: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.result.outcomes["ok"] < answered:
            assert time.monotonic() < deadline, f"only {self.result.outcomes} after {timeout} s"
            time.sleep(0.02)

    def stop(self, timeout: float = 120) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        return self.result


def terminate(service: Service) -> None:
    service.process.send_signal(signal.SIGTERM)
