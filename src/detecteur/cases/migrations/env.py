"""Alembic environment: run by `detecteur.cases.store.migrate` (and by `alembic` itself with `-x url=...`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

from detecteur.cases.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run(connection_: Connection) -> None:
    context.configure(connection=connection_, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        if context.get_bind().dialect.name == "postgresql":
            # Several replicas starting at once: one migrates, the others wait and then find nothing to do.
            context.get_bind().execute(text("SELECT pg_advisory_xact_lock(4242024)"))
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///var/cases/cases.sqlite3 upgrade head")
    with create_engine(url).connect() as opened:
        run(opened)
