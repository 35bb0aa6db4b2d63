"""Batching across requests: the windows of concurrent requests go through the network in one forward pass.

ONNX Runtime judges 32 windows at once in much less than 32 times the time of one, but each request brings only a
few (a face and its stability copies). `RequestBatcher` hands every caller's windows to one worker thread, which
runs whatever has gathered as one batch:

- while a batch runs, the next callers queue, and the next batch takes all of them (up to `max_batch` windows);
- the worker waits up to `window_ms` after the first caller for more, but only while requests it was told about
  (`RequestBatcher.request`) have not sent their windows yet, so a lone request never waits;
- `window_ms = 0` turns batching off: each caller runs the network itself, as before (`batched_backend`).

The queue limit and the 503 `overloaded` answer stay where they are (`api.limits.InferenceQueue`): this only
changes how the admitted requests share the network.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from detecteur.inputs.preprocess import InputSpec, preprocess_array
from detecteur.model.backends import Backend, OnnxRuntimeBackend


@dataclass
class _Job:
    inputs: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    outputs: np.ndarray | None = None
    error: BaseException | None = None


class RequestBatcher:
    """Runs `run` (an N×… float32 batch → N×K outputs) on the inputs of concurrent callers, stacked into one batch
    of at most `max_batch` rows (a caller's own inputs are never split, so a larger one runs alone).
    Thread-safe; the worker thread starts with the first call and stops on `close`."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], window_ms: float, max_batch: int) -> None:
        if window_ms < 0 or max_batch < 1:
            raise ValueError("window_ms must be >= 0 and max_batch >= 1")
        self._run, self.window_s, self.max_batch = run, window_ms / 1000, max_batch
        self._jobs: deque[_Job] = deque()
        self._changed = threading.Condition()
        self._expected = 0  # announced requests that have not sent their inputs yet
        self._announced = threading.local()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.batches_run = 0  # for tests and telemetry: forward passes so far

    @contextmanager
    def request(self) -> Iterator[None]:
        """Announce a request that will send inputs from this thread (one image judged): until it does (or ends),
        the worker waits for it, within `window_ms`, before running a batch without it."""
        with self._changed:
            self._expected += 1
        self._announced.pending = True
        try:
            yield
        finally:
            with self._changed:
                if self._announced.pending:
                    self._expected -= 1
                    self._changed.notify_all()
            self._announced.pending = False

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """`run(inputs)`, computed in a batch with whatever other callers sent meanwhile."""
        job = _Job(np.ascontiguousarray(inputs, dtype=np.float32))
        with self._changed:
            if self._closed:
                raise RuntimeError("the request batcher is closed")
            self._start_worker()
            self._jobs.append(job)
            if getattr(self._announced, "pending", False):
                self._announced.pending = False
                self._expected -= 1
            self._changed.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.outputs is not None
        return job.outputs

    def close(self) -> None:
        """Stop the worker once the jobs already queued are done."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._serve, name="detecteur-batcher", daemon=True)
            self._worker.start()

    def _serve(self) -> None:
        while True:
            jobs = self._gather()
            if not jobs:
                return
            self._run_batch(jobs)

    def _gather(self) -> list[_Job]:
        """The next batch: the queued jobs, after waiting (at most `window_s` from the first) for the announced
        requests still to come, while the batch has room. Empty once closed and drained."""
        with self._changed:
            while not self._jobs:
                if self._closed:
                    return []
                self._changed.wait()
            deadline = time.monotonic() + self.window_s
            while self._expected > 0 and self._room() and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            batch = [self._jobs.popleft()]
            rows = len(batch[0].inputs)
            while self._jobs and rows + len(self._jobs[0].inputs) <= self.max_batch:
                rows += len(self._jobs[0].inputs)
                batch.append(self._jobs.popleft())
            return batch

    def _room(self) -> bool:
        return sum(len(job.inputs) for job in self._jobs) < self.max_batch

    def _run_batch(self, jobs: Sequence[_Job]) -> None:
        try:
            outputs = self._run(np.concatenate([job.inputs for job in jobs]))
            start = 0
            for job in jobs:
                job.outputs = outputs[start : start + len(job.inputs)]
                start += len(job.inputs)
        except Exception as error:  # every caller of the batch gets the error; the worker lives on
            for job in jobs:
                job.error = error
        finally:
            self.batches_run += 1
            for job in jobs:
                job.done.set()


class BatchedBackend:
    """An ONNX Runtime backend whose forward passes go through a `RequestBatcher`; windows are preprocessed in the
    caller's thread, so only the network itself is shared."""

    def __init__(self, inner: OnnxRuntimeBackend, window_ms: float, max_batch: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.batcher = RequestBatcher(inner.logits, window_ms, max_batch)
        # The worker thread holds the session, not this object: stop it when the backend is dropped (a reload).
        weakref.finalize(self, self.batcher.close)

    def window_logits(self, windows: Sequence[Image.Image], spec: InputSpec) -> np.ndarray:
        return self.batcher.logits(np.stack([preprocess_array(window, spec) for window in windows]))


def announce_request(backend: Backend) -> AbstractContextManager[None]:
    """`RequestBatcher.request` when `backend` batches across requests, else nothing."""
    return backend.batcher.request() if isinstance(backend, BatchedBackend) else nullcontext()


def batched_backend(backend: Backend, window_ms: float, max_batch: int) -> Backend:
    """`backend` behind a `RequestBatcher` when batching is on (`window_ms` > 0) and it runs on ONNX Runtime; the
    torch backend (training, evaluation, the GPU) is left as it is."""
    if window_ms > 0 and isinstance(backend, OnnxRuntimeBackend):
        return BatchedBackend(backend, window_ms, max_batch)
    return backend
