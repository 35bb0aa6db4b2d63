"""A throw-away PostgreSQL cluster for the tests and benchmarks: `initdb` + `pg_ctl` on a temporary directory and
a free port, run as a non-root user (PostgreSQL refuses to run as root: as root, the cluster belongs to `nobody`, or
to $DETECTEUR_PG_USER). The binaries are looked for in $DETECTEUR_PG_BIN, /usr/lib/postgresql/<15…>/bin and on
PATH (`pg_config --bindir`); without them `find_bin_dir` returns None and the callers skip, saying so."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

VERSIONS = ("15", "16", "17", "14")


def find_bin_dir() -> Path | None:
    candidates: list[Path] = []
    if configured := os.environ.get("DETECTEUR_PG_BIN"):
        candidates.append(Path(configured))
    candidates += [Path(f"/usr/lib/postgresql/{version}/bin") for version in VERSIONS]
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            candidates.append(
                Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
            )
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """`with PostgresCluster(bin_dir) as cluster: cluster.create_database()` → a SQLAlchemy URL."""

    def __init__(self, bin_dir: Path, fsync: bool = False) -> None:
        self.bin_dir, self.fsync = bin_dir, fsync
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="detecteur-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._counter = itertools.count()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = os.environ.get("DETECTEUR_PG_USER", "nobody")
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            if shutil.which("runuser"):
                command = ["runuser", "-u", self.user, "--", *command]
            else:
                command = ["su", "-s", "/bin/sh", self.user, "-c", shlex.join(command)]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def cluster_or_none(fsync: bool = False) -> Iterator[PostgresCluster | None]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        yield None
        return
    started = time.monotonic()
    with PostgresCluster(bin_dir, fsync=fsync) as cluster:
        cluster.started_s = time.monotonic() - started  # type: ignore[attr-defined]
        yield cluster
