"""The store's database connection: SQLite with durable-on-crash pragmas, or PostgreSQL through psycopg 3, and
Alembic pointed at the store's migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import (
    Engine,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL + synchronous=NORMAL: a commit is durable against a crash or SIGKILL of the process (not against a power
    # cut between checkpoints); readers never block the writer. secure_delete overwrites erased images on disk.
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "secure_delete=ON",
        "busy_timeout=10000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_store_engine(url: str, synchronous_commit: bool = True) -> Engine:
    """SQLite with the pragmas above, or PostgreSQL through psycopg 3 with this session's `synchronous_commit`:
    on, a commit returns once its WAL is on disk; off, before (see `Settings.cases_synchronous_commit`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # No pre-ping: it costs a round trip on every checkout, as much as the write itself on a busy host. A
    # connection the server dropped is retried once instead (`CaseStore._retrying`). Connections are recycled
    # hourly so a server-side idle timeout never hands one back dead.
    session = {"options": f"-c synchronous_commit={'on' if synchronous_commit else 'off'}"}
    return create_engine(url, pool_size=8, max_overflow=8, pool_recycle=3600, connect_args=session)


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
