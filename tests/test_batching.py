"""Batching across requests (`inference.batching`): deterministic checks, no timing assertions. Concurrent callers
are lined up with a barrier in the fake network, so which batch each lands in is decided by the test, not the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detecteur.config import Settings
from detecteur.inference.batching import BatchedBackend, RequestBatcher, announce_request, batched_backend
from detecteur.inference.engine import Detector
from detecteur.model.serving_session import optimised_graph_path, release_freed_memory, serving_session
from tests.test_lean_serving import SAMPLES, native_graph, native_model  # noqa: F401 - shared fixtures

# Long enough that no batch in these tests is ever cut by the clock: they end on a full batch or a request leaving.
NEVER_MS = 60_000.0


class FakeNetwork:
    """Row-wise `x * 2` summed to one column, recording the batch sizes it saw; `gate` holds the first pass back
    until the test opens it."""

    def __init__(self, fail: bool = False) -> None:
        self.batch_sizes: list[int] = []
        self.first_started = threading.Event()
        self.gate = threading.Event()
        self.fail = fail

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        self.first_started.set()
        self.gate.wait()
        if self.fail:
            raise ValueError("network failed")
        return np.stack([batch.reshape(len(batch), -1).sum(axis=1) * 2, np.zeros(len(batch))], axis=1)


def rows(*values: float) -> np.ndarray:
    return np.array([[[value]] for value in values], dtype=np.float32)


def in_threads(calls: list[Callable[[], np.ndarray]]) -> tuple[list[np.ndarray], list[threading.Thread]]:
    """Start one thread per call; their results (or errors) land in the returned list."""
    results: list[np.ndarray] = [np.zeros(0)] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as error:
            results[index] = error  # type: ignore[call-overload]

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    return results, threads


def test_a_lone_caller_gets_its_own_outputs_at_once() -> None:
    network = FakeNetwork()
    network.gate.set()
    batcher = RequestBatcher(network, NEVER_MS, max_batch=32)
    with batcher.request():
        out = batcher.logits(rows(1.0, 2.0))
    # The announced request had sent its windows, so the worker did not wait the (minute-long) window.
    np.testing.assert_array_equal(out[:, 0], [2.0, 4.0])
    assert network.batch_sizes == [2]
    batcher.close()


def test_callers_queued_behind_a_running_batch_share_the_next_one_and_get_their_own_rows() -> None:
    network = FakeNetwork()
    batcher = RequestBatcher(network, NEVER_MS, max_batch=32)
    first, first_threads = in_threads([lambda: batcher.logits(rows(1.0))])
    network.first_started.wait()
    # While the first pass runs, three callers queue up (not announced: nothing to wait for).
    queued, queued_threads = in_threads([lambda v=v: batcher.logits(rows(v, v + 0.5)) for v in (10.0, 20.0, 30.0)])
    while len(batcher._jobs) < 3:  # the three are queued once the deque holds them
        threading.Event().wait(0.001)
    network.gate.set()
    for thread in first_threads + queued_threads:
        thread.join()
    assert network.batch_sizes == [1, 6]
    np.testing.assert_array_equal(first[0][:, 0], [2.0])
    for value, out in zip((10.0, 20.0, 30.0), queued, strict=True):
        np.testing.assert_array_equal(out[:, 0], [2 * value, 2 * value + 1.0])
    batcher.close()


def test_the_worker_waits_for_announced_requests_until_the_batch_is_full() -> None:
    network = FakeNetwork()
    network.gate.set()
    batcher = RequestBatcher(network, NEVER_MS, max_batch=4)
    ready = threading.Barrier(4)

    def request(value: float) -> np.ndarray:
        with batcher.request():
            ready.wait()  # all four announced before any sends
            return batcher.logits(rows(value))

    results, threads = in_threads([lambda v=v: request(v) for v in (1.0, 2.0, 3.0, 4.0)])
    for thread in threads:
        thread.join()
    assert network.batch_sizes == [4]  # one pass, although the first caller could have run alone
    assert sorted(float(out[0, 0]) for out in results) == [2.0, 4.0, 6.0, 8.0]
    batcher.close()


def test_a_request_that_ends_without_sending_releases_the_wait() -> None:
    network = FakeNetwork()
    network.gate.set()
    batcher = RequestBatcher(network, NEVER_MS, max_batch=32)
    announced = threading.Event()
    leave = threading.Event()

    def silent_request() -> np.ndarray:
        with batcher.request():
            announced.set()
            leave.wait()
        return np.zeros(0)

    _, silent = in_threads([silent_request])
    announced.wait()
    sender, senders = in_threads([lambda: batcher.logits(rows(5.0))])
    while not batcher._jobs:
        threading.Event().wait(0.001)
    leave.set()  # the silent request ends: the worker stops waiting for it and runs the batch
    for thread in silent + senders:
        thread.join()
    np.testing.assert_array_equal(sender[0][:, 0], [10.0])
    assert network.batch_sizes == [1]
    batcher.close()


def test_batches_never_exceed_max_batch_but_a_large_caller_runs_alone() -> None:
    network = FakeNetwork()
    batcher = RequestBatcher(network, 0.0, max_batch=4)
    _, first = in_threads([lambda: batcher.logits(rows(0.0))])
    network.first_started.wait()
    _, rest = in_threads([lambda: batcher.logits(rows(1.0, 1.0, 1.0))])
    while len(batcher._jobs) < 1:
        threading.Event().wait(0.001)
    _, more = in_threads([lambda: batcher.logits(rows(2.0, 2.0))])
    while len(batcher._jobs) < 2:
        threading.Event().wait(0.001)
    _, large = in_threads([lambda: batcher.logits(rows(*[3.0] * 6))])
    while len(batcher._jobs) < 3:
        threading.Event().wait(0.001)
    network.gate.set()
    for thread in first + rest + more + large:
        thread.join()
    assert network.batch_sizes == [1, 3, 2, 6]
    batcher.close()


def test_an_error_reaches_every_caller_of_the_batch_and_the_worker_survives() -> None:
    network = FakeNetwork(fail=True)
    network.gate.set()
    batcher = RequestBatcher(network, 0.0, max_batch=8)
    with pytest.raises(ValueError, match="network failed"):
        batcher.logits(rows(1.0))
    network.fail = False
    np.testing.assert_array_equal(batcher.logits(rows(1.0))[:, 0], [2.0])
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.logits(rows(1.0))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RequestBatcher(FakeNetwork(), -1.0, max_batch=4)
    with pytest.raises(ValueError):
        RequestBatcher(FakeNetwork(), 1.0, max_batch=0)


def test_batching_is_off_at_zero_and_for_other_backends() -> None:
    class OtherBackend:
        name = "torch"

        def window_logits(self, windows: object, spec: object) -> np.ndarray:
            return np.zeros((0, 2), dtype=np.float32)

    other = OtherBackend()
    assert batched_backend(other, 5.0, 32) is other  # type: ignore[arg-type]
    with announce_request(other):  # type: ignore[arg-type]
        pass


def test_batching_settings() -> None:
    assert Settings(batch_window_ms=0, inference_threads=2, model_threads=None).threads_per_inference >= 1
    batched = Settings(batch_window_ms=2.0, model_threads=None, backend="onnxruntime")
    unbatched = Settings(batch_window_ms=0.0, model_threads=None, backend="onnxruntime", inference_threads=64)
    assert batched.threads_per_inference >= unbatched.threads_per_inference


def test_a_detector_batching_across_threads_judges_as_one_without_batching(
    native_model: Path,  # noqa: F811 - the fixture
    native_graph: Path,  # noqa: F811
) -> None:
    images = [Image.open(path).convert("RGB") for path in sorted(SAMPLES.glob("*.jpg"))]
    alone = Detector(native_model, backend="onnxruntime", onnx_path=native_graph, batch_window_ms=0)
    batched = Detector(native_model, backend="onnxruntime", onnx_path=native_graph, batch_window_ms=NEVER_MS)
    assert isinstance(batched.backend, BatchedBackend) and not isinstance(alone.backend, BatchedBackend)
    expected = [alone.judge(image, stability=True).most_suspicious.verdict.fake_probability for image in images]
    with ThreadPoolExecutor(len(images)) as pool:
        judged = list(pool.map(lambda image: batched.judge(image, stability=True), images))
    actual = [result.most_suspicious.verdict.fake_probability for result in judged]
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    # Fewer forward passes than images: concurrent requests shared them (how many is up to the threads' timing).
    assert 1 <= batched.backend.batcher.batches_run <= len(images)


def test_the_optimised_graph_is_cached_beside_the_graph_and_gives_the_same_logits(
    native_graph: Path,  # noqa: F811 - the fixture
) -> None:
    inputs = np.random.default_rng(0).standard_normal((2, 4, 64, 64)).astype(np.float32)
    optimised = optimised_graph_path(native_graph)
    optimised.unlink(missing_ok=True)
    first = serving_session(native_graph).run(None, {"input": inputs})[0]
    assert optimised.is_file()
    second = serving_session(native_graph).run(None, {"input": inputs})[0]
    np.testing.assert_allclose(first, second, atol=1e-5)
    optimised.write_bytes(b"not a graph")  # a damaged cache is replaced, not fatal
    np.testing.assert_allclose(serving_session(native_graph).run(None, {"input": inputs})[0], first, atol=1e-5)
    release_freed_memory()
