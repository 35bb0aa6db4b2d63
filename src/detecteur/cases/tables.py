"""The cases tables (SQLAlchemy 2). Alembic's migrations under `migrations/versions/` create and change them;
this module is what the code reads and writes, and a test checks that the two agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite makes only INTEGER PRIMARY KEY an alias of its rowid (autoincrementing); PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class CaseRow(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(8))  # "image" | "video"
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(255))
    verdict: Mapped[str] = mapped_column(String(16))
    fake_probability: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(128))
    # The API's full answer for this file (verdicts, boxes, evidence when asked for) + threshold and band.
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    api_key_name: Mapped[str | None] = mapped_column(String(64))
    # The most recent earlier case with the same bytes, when there was one.
    previous_case_id: Mapped[int | None] = mapped_column(BigId)
    decision: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)

    # Listing is newest first (id descending; (created_at, id) descending with a date range: keyset pagination)
    # with at most one equality filter in the common case: one index per filter, ending in the listing's order,
    # lets the database walk it backwards and stop at the page size (EXPLAIN plans in docs/service.md).
    __table_args__ = (
        Index("ix_cases_created_at_id", "created_at", "id"),
        Index("ix_cases_verdict_id", "verdict", "id"),
        Index("ix_cases_decision_id", "decision", "id"),
        Index("ix_cases_model_version_id", "model_version", "id"),
        Index("ix_cases_sha256_id", "sha256", "id"),
    )


class CaseImageRow(Base):
    """The uploaded bytes, only when `store_images` is on; erased after the retention period or with the case."""

    __tablename__ = "case_images"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
