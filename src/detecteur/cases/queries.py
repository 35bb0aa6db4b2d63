"""How the cases store asks for pages: the filters a listing takes, the keyset cursor that pages through them, and
the queries that pick a page's ids down an index before joining the rest (see `CaseStore.list`)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    or_,
    select,
    tuple_,
)

from detecteur.cases.models import CaseSummary, SeenBefore
from detecteur.cases.tables import CaseImageRow, CaseRow


@dataclass(frozen=True)
class CaseFilter:
    verdict: str | None = None
    decision: str | None = None  # a decision, "none" (not reviewed) or "any" (reviewed)
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sha256: str | None = None
    kind: str | None = None
    disagreements: bool = False  # only cases whose confirmed label differs from the model's verdict

    @property
    def dated(self) -> bool:
        """A date range pages in (created_at, id) order, down the `(created_at, id)` index: in id order the
        database would walk every newer case before reaching the range."""
        return self.since is not None or self.until is not None

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.verdict:
            clauses.append(CaseRow.verdict == self.verdict)
        if self.decision == "none":
            clauses.append(CaseRow.decision.is_(None))
        elif self.decision == "any":
            clauses.append(CaseRow.decision.is_not(None))
        elif self.decision:
            clauses.append(CaseRow.decision == self.decision)
        if self.model_version:
            clauses.append(CaseRow.model_version == self.model_version)
        if self.since:
            clauses.append(CaseRow.created_at >= _utc(self.since))
        if self.until:
            clauses.append(CaseRow.created_at < _utc(self.until))
        if self.sha256:
            clauses.append(CaseRow.sha256 == self.sha256.lower())
        if self.kind:
            clauses.append(CaseRow.kind == self.kind)
        if self.disagreements:
            clauses.append(_disagreement())
        return clauses


def _disagreement() -> ColumnElement[bool]:
    """A confirmed label the model did not give (a borderline verdict counts: the model did not commit)."""
    return or_(
        and_(CaseRow.decision == "confirmed_synthetic", CaseRow.verdict != "synthetic"),
        and_(CaseRow.decision == "confirmed_authentic", CaseRow.verdict != "authentic"),
    )


def _utc(moment: datetime) -> datetime:
    """Aware UTC. SQLite gives back naive datetimes (stored as UTC): they are read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: its last case's id, and its time when the listing is in date order (`CaseFilter.dated`)."""

    case_id: int
    created_at: datetime | None = None


def encode_cursor(case_id: int, created_at: datetime | None = None) -> str:
    """Opaque to clients: `c<id>`, or `c<id>.<microseconds since 1970>` for a page in date order (exact)."""
    raw = f"c{case_id}"
    if created_at is not None:
        raw += f".{(_utc(created_at) - EPOCH) // timedelta(microseconds=1)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("c"):
            raise ValueError(cursor)
        case_id, _, micros = raw[1:].partition(".")
        return Cursor(int(case_id), EPOCH + timedelta(microseconds=int(micros)) if micros else None)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as error:
        raise ValueError("invalid cursor") from error


_SUMMARY_COLUMNS = (
    CaseRow.id,
    CaseRow.created_at,
    CaseRow.kind,
    CaseRow.sha256,
    CaseRow.size_bytes,
    CaseRow.media_type,
    CaseRow.filename,
    CaseRow.verdict,
    CaseRow.fake_probability,
    CaseRow.model_version,
    CaseRow.api_key_name,
    CaseRow.previous_case_id,
    CaseRow.decision,
    CaseRow.note,
    CaseRow.decided_at,
    CaseRow.decided_by,
    CaseImageRow.case_id.is_not(None).label("has_image"),
    CaseRow.thumbnail.is_not(None).label("has_thumbnail"),
    _disagreement().label("disagreement"),
)


def _page_ids(filters: CaseFilter, after: Cursor | None, limit: int) -> Any:
    """The ids of one page, newest first (keyset pagination): the filters, the cursor and the limit run on `cases`
    alone, so the database walks one of its (filter…, id) indexes backwards — or `(created_at, id)` for a date
    range — and stops after `limit` rows. A cursor from the other order is refused (ValueError)."""
    query = select(CaseRow.id).where(*filters.clauses())
    if after is not None and (after.created_at is not None) != filters.dated:
        raise ValueError("invalid cursor: it belongs to a listing with other filters")
    if filters.dated:
        if after is not None:
            query = query.where(tuple_(CaseRow.created_at, CaseRow.id) < tuple_(after.created_at, after.case_id))
        query = query.order_by(CaseRow.created_at.desc(), CaseRow.id.desc())
    else:
        if after is not None:
            query = query.where(CaseRow.id < after.case_id)
        query = query.order_by(CaseRow.id.desc())
    return query.limit(limit).subquery("page")


def _summary_select(page: Any, *extra: Any, dated: bool = False) -> Any:
    """The summary columns (and `extra`) of the cases whose ids `page` holds, in its order. The join with
    `case_images` and the wide columns are read for the page's rows only, never for every match of the filter."""
    order = (CaseRow.created_at.desc(), CaseRow.id.desc()) if dated else (CaseRow.id.desc(),)
    return (
        select(*_SUMMARY_COLUMNS, *extra)
        .select_from(page)
        .join(CaseRow, CaseRow.id == page.c.id)
        .outerjoin(CaseImageRow, CaseImageRow.case_id == CaseRow.id)
        .order_by(*order)
    )


def _cursor_after(case: CaseSummary, filters: CaseFilter) -> Cursor:
    return Cursor(case.id, case.created_at if filters.dated else None)


def _summary(row: Any) -> dict[str, Any]:
    values = dict(row._mapping)
    for name in ("created_at", "decided_at"):
        if values.get(name) is not None:
            values[name] = _utc(values[name])
    values["has_image"] = bool(values["has_image"])
    values["has_thumbnail"] = bool(values["has_thumbnail"])
    values["disagreement"] = bool(values["disagreement"])
    return values


_PREVIOUS_COLUMNS = (CaseRow.id, CaseRow.created_at, CaseRow.verdict, CaseRow.model_version, CaseRow.decision)


def _seen_before(row: Any) -> SeenBefore:
    """The earlier case of the same bytes, from a row of `_PREVIOUS_COLUMNS` + `times`."""
    return SeenBefore(
        case_id=row.id,
        created_at=_utc(row.created_at),
        verdict=row.verdict,
        model_version=row.model_version,
        decision=row.decision,
        times=row.times,
    )
