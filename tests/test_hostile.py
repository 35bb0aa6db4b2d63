"""The hostile-input corpus against a real server (uvicorn in a subprocess, the shipped model, default limits):
every case gets its documented status and error code, and the server still answers /health afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from scripts.make_hostile_corpus import REPO, HostileCase, HostileRequest, cases, free_port, markdown_table, send

from detecteur.config import Settings

HOST = "127.0.0.1"
README = REPO / "tests" / "data" / "hostile" / "README.md"
CASES = cases()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    model = REPO / Settings().model_path
    if not model.is_file():
        pytest.skip(f"the shipped model {model} is not there")
    port = free_port(HOST)
    log = tmp_path_factory.mktemp("hostile-server") / "server.log"
    env = dict(os.environ, DETECTEUR_HOST=HOST, DETECTEUR_PORT=str(port), DETECTEUR_MODEL_PATH=str(model))
    # One OpenMP thread per inference: on a busy shared machine two spin-wait for each other (see test_faults).
    env["OMP_NUM_THREADS"] = "1"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "detecteur", "serve"], env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 120
        while send(HostileRequest("GET", "/health", {}), HOST, port, timeout=5).status != 200:
            assert process.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the server never became ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-5000:]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_hostile_input_gets_its_documented_answer_and_the_server_stays_up(server: int, case: HostileCase) -> None:
    outcome = send(case.build(), HOST, server)

    assert outcome.connection_error is None, outcome.connection_error
    assert (outcome.status, outcome.code) == (case.status, case.code), outcome.body
    if case.code:
        assert outcome.body["error"]["message"]  # type: ignore[index]
    if case.evidence:
        (result,) = outcome.body["results"]  # type: ignore[misc]
        assert {line: result["evidence"][line]["status"] for line, _ in case.evidence} == dict(case.evidence)
        # Never a hang: reading the hostile metadata takes milliseconds (a generous bound for a busy machine).
        assert result["timings"]["provenance_ms"] < 5000
    assert send(HostileRequest("GET", "/health", {}), HOST, server).status == 200


def test_a_file_name_with_directories_and_nul_is_echoed_harmlessly(server: int) -> None:
    (case,) = [case for case in CASES if case.name == "filename-traversal-nul"]
    body = send(case.build(), HOST, server).body
    assert body["results"][0]["filename"] == "passwd.jpg"  # type: ignore[index]


def test_the_corpus_has_at_least_30_distinct_cases_and_its_table_is_the_committed_one() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)
    assert markdown_table() in README.read_text(), "regenerate with: python -m scripts.make_hostile_corpus --table"


def test_the_slow_upload_is_cut_off_before_the_whole_body_is_sent(server: int) -> None:
    (case,) = [case for case in CASES if case.name == "slow-25mb-seed-route"]
    request = case.build()
    outcome = send(request, HOST, server)
    assert outcome.status == 413
    assert outcome.bytes_sent < len(request.body), "the server waited for the whole 25 MB"
