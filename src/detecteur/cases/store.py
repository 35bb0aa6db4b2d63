"""`CaseStore`: records, lists, updates, erases and exports cases. Synchronous (SQLAlchemy 2 Core/ORM); the
service calls it from worker threads. Every write is one transaction: once `record` returns, the case survives a
crash of the process (SQLite in WAL mode, PostgreSQL's commit)."""

from __future__ import annotations

import base64
import binascii
import builtins
import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Engine,
    LargeBinary,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from detecteur.cases.models import CaseDetail, CasePage, CaseSummary, SeenBefore
from detecteur.cases.tables import CaseImageRow, CaseRow

MIGRATIONS = Path(__file__).parent / "migrations"
_T = TypeVar("_T")
MAX_PAGE = 500
EXPORT_FIELDS = (
    "id",
    "created_at",
    "kind",
    "sha256",
    "size_bytes",
    "media_type",
    "filename",
    "verdict",
    "fake_probability",
    "model_version",
    "api_key_name",
    "previous_case_id",
    "decision",
    "note",
    "decided_at",
    "decided_by",
)
# The labelled folder `detecteur data` reads: <root>/{real,fake}/.
DECISION_FOLDERS = {"confirmed_authentic": "real", "confirmed_synthetic": "fake"}
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/gif": ".gif",
}


class StoreError(Exception):
    """The database could not be reached, migrated or written."""


@dataclass(frozen=True)
class NewCase:
    kind: str  # "image" | "video"
    sha256: str
    size_bytes: int
    media_type: str
    filename: str | None
    verdict: str
    fake_probability: float
    model_version: str
    response: dict[str, Any]
    api_key_name: str | None = None
    thumbnail: bytes | None = None
    image: bytes | None = None  # stored only when given (the service gives it when `store_images` is on)


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


class CaseStore:
    """The cases database at `url` (`sqlite:///path` or `postgresql+psycopg://…`). Call `migrate` once first."""

    def __init__(
        self, url: str, image_retention: timedelta = timedelta(days=30), synchronous_commit: bool = True
    ) -> None:
        self.url = url
        self.engine = create_store_engine(url, synchronous_commit)
        self.image_retention = image_retention

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is there already)."""
        try:
            with self.engine.begin() as connection:
                command.upgrade(alembic_config(connection), "head")
        except SQLAlchemyError as error:
            raise StoreError(f"cannot migrate the cases database: {error}") from error

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    def close(self) -> None:
        self.engine.dispose()

    # --- writing ------------------------------------------------------------------------------------------------

    def record(self, case: NewCase, now: datetime | None = None) -> tuple[int, SeenBefore | None]:
        """Insert one case (and its image when given) in one transaction; returns its id and the earlier case of
        the same bytes. It is committed when this returns."""
        now = _utc(now or now_utc())
        values = {
            "created_at": now,
            "kind": case.kind,
            "sha256": case.sha256.lower(),
            "size_bytes": case.size_bytes,
            "media_type": case.media_type,
            "filename": case.filename,
            "verdict": case.verdict,
            "fake_probability": case.fake_probability,
            "model_version": case.model_version,
            "response": case.response,
            "api_key_name": case.api_key_name,
            "thumbnail": case.thumbnail,
        }
        image = None if case.image is None else {"data": case.image, "expires_at": now + self.image_retention}
        if self.dialect == "postgresql":
            return self._retrying(lambda: self._record_in_one_statement(values, image))
        return self._record_in_steps(values, image)

    def _record_in_one_statement(
        self, values: dict[str, Any], image: dict[str, Any] | None
    ) -> tuple[int, SeenBefore | None]:
        """PostgreSQL: the seen-before lookup, the insert and the image in ONE statement on an autocommit
        connection — one round trip to the server, where BEGIN + 3 statements + COMMIT took five (each a
        scheduling delay on a busy host). The statement is its own transaction: all or nothing."""
        previous = (
            select(*_PREVIOUS_COLUMNS, func.count().over().label("times"))
            .where(CaseRow.sha256 == values["sha256"])
            .order_by(CaseRow.id.desc())
            .limit(1)
            .cte("previous")
        )
        inserted = (
            insert(CaseRow)
            .values(**values, previous_case_id=select(previous.c.id).scalar_subquery())
            .returning(CaseRow.id)
            .cte("inserted")
        )
        statement = (
            select(inserted.c.id.label("case_id"), *previous.c).select_from(inserted).outerjoin(previous, true())
        )
        if image is not None:
            columns = (literal(image["data"], LargeBinary()), literal(image["expires_at"], DateTime(timezone=True)))
            statement = statement.add_cte(
                insert(CaseImageRow)
                .from_select(["case_id", "data", "expires_at"], select(inserted.c.id, *columns))
                .cte("image")
            )
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            row = connection.execute(statement).one()
        return int(row.case_id), (_seen_before(row) if row.id is not None else None)

    def _record_in_steps(self, values: dict[str, Any], image: dict[str, Any] | None) -> tuple[int, SeenBefore | None]:
        """SQLite (in-process: statements cost no round trip): lookup, insert and image in one transaction."""
        with self.engine.begin() as connection:
            previous = connection.execute(
                select(*_PREVIOUS_COLUMNS, func.count().over().label("times"))
                .where(CaseRow.sha256 == values["sha256"])
                .order_by(CaseRow.id.desc())
                .limit(1)
            ).first()
            case_id = connection.execute(
                insert(CaseRow)
                .values(**values, previous_case_id=previous.id if previous is not None else None)
                .returning(CaseRow.id)
            ).scalar_one()
            if image is not None:
                connection.execute(insert(CaseImageRow).values(case_id=case_id, **image))
        return int(case_id), (_seen_before(previous) if previous is not None else None)

    def _retrying(self, write: Callable[[], _T]) -> _T:
        """`write`, run again once when the pooled connection it got had been dropped by the server (a restart,
        an idle timeout): the pool has then been emptied, so the retry opens a fresh connection."""
        try:
            return write()
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            return write()

    def update(
        self, case_id: int, changes: dict[str, Any], by: str | None = None, now: datetime | None = None
    ) -> CaseDetail | None:
        """Set `decision` and/or `note` (the keys present in `changes`); None when there is no such case."""
        values: dict[str, Any] = {key: changes[key] for key in ("decision", "note") if key in changes}
        if "decision" in values:
            values |= {"decided_at": _utc(now or now_utc()) if values["decision"] else None, "decided_by": by}
        with self.engine.begin() as connection:
            if values:
                done = connection.execute(update(CaseRow).where(CaseRow.id == case_id).values(**values))
                if done.rowcount == 0:
                    return None
        return self.get(case_id)

    def delete(self, case_id: int) -> bool:
        """Erase the case and its stored image and thumbnail. False when there was no such case."""
        with self.engine.begin() as connection:
            connection.execute(delete(CaseImageRow).where(CaseImageRow.case_id == case_id))
            connection.execute(update(CaseRow).where(CaseRow.previous_case_id == case_id).values(previous_case_id=None))
            return bool(connection.execute(delete(CaseRow).where(CaseRow.id == case_id)).rowcount)

    def purge_expired_images(self, now: datetime | None = None) -> int:
        """Erase the images and thumbnails older than the retention period; the records stay. Returns the number
        of cases that lost an image or a thumbnail."""
        now = _utc(now or now_utc())
        with self.engine.begin() as connection:
            images = connection.execute(delete(CaseImageRow).where(CaseImageRow.expires_at <= now)).rowcount
            thumbnails = connection.execute(
                update(CaseRow)
                .where(CaseRow.thumbnail.is_not(None), CaseRow.created_at <= now - self.image_retention)
                .values(thumbnail=None)
            ).rowcount
        return max(images, thumbnails)

    # --- reading ------------------------------------------------------------------------------------------------

    def get(self, case_id: int) -> CaseDetail | None:
        with self.engine.connect() as connection:
            one = select(CaseRow.id).where(CaseRow.id == case_id).subquery("page")
            row = connection.execute(_summary_select(one, CaseRow.response)).first()
        return CaseDetail.model_validate(_summary(row)) if row is not None else None

    def list(self, filters: CaseFilter = CaseFilter(), cursor: str | None = None, limit: int = 50) -> CasePage:
        """Newest first; `cursor` (from the previous page's `next_cursor`) continues below it."""
        limit = max(1, min(limit, MAX_PAGE))
        page = _page_ids(filters, decode_cursor(cursor) if cursor else None, limit + 1)
        with self.engine.connect() as connection:
            rows = connection.execute(_summary_select(page, dated=filters.dated)).all()
        cases = [CaseSummary.model_validate(_summary(row)) for row in rows[:limit]]
        if len(rows) <= limit:
            return CasePage(cases=cases, next_cursor=None)
        last = _cursor_after(cases[-1], filters)
        return CasePage(cases=cases, next_cursor=encode_cursor(last.case_id, last.created_at))

    def iterate(self, filters: CaseFilter = CaseFilter(), batch: int = 1000) -> Iterator[CaseDetail]:
        """Every matching case, newest first, fetched in batches (for exports of any size)."""
        after: Cursor | None = None
        while True:
            page = _page_ids(filters, after, batch)
            with self.engine.connect() as connection:
                rows = connection.execute(_summary_select(page, CaseRow.response, dated=filters.dated)).all()
            cases = [CaseDetail.model_validate(_summary(row)) for row in rows]
            yield from cases
            if len(rows) < batch:
                return
            after = _cursor_after(cases[-1], filters)

    def image(self, case_id: int) -> tuple[bytes, str] | None:
        """The stored upload and its media type, when kept."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(CaseImageRow.data, CaseRow.media_type)
                .join(CaseRow, CaseRow.id == CaseImageRow.case_id)
                .where(CaseImageRow.case_id == case_id)
            ).first()
        return (bytes(row.data), row.media_type) if row is not None else None

    def thumbnail(self, case_id: int) -> bytes | None:
        with self.engine.connect() as connection:
            data = connection.execute(select(CaseRow.thumbnail).where(CaseRow.id == case_id)).scalar_one_or_none()
        return bytes(data) if data is not None else None

    def model_versions(self) -> builtins.list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(CaseRow.model_version).distinct()).scalars())

    def count(self, filters: CaseFilter = CaseFilter()) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(CaseRow).where(*filters.clauses())).scalar_one()
            )

    # --- exports ------------------------------------------------------------------------------------------------

    def export_jsonl(self, filters: CaseFilter = CaseFilter()) -> Iterator[str]:
        for case in self.iterate(filters):
            yield case.model_dump_json() + "\n"

    def export_csv(self, filters: CaseFilter = CaseFilter()) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for case in self.iterate(filters):
            writer.writerow(_csv_row(case.model_dump(mode="json")))
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    def export_labelled_folder(self, out: IO[bytes], filters: CaseFilter = CaseFilter()) -> dict[str, int]:
        """A zip of `real/` and `fake/` — the layout `detecteur data manifest` reads — holding the stored images of
        the reviewed cases, labelled by the reviewer's decision (not the model's), plus `cases.jsonl`. Cases without
        a stored image or with an `unsure` decision are left out; counts of each are returned."""
        counts = {"real": 0, "fake": 0, "without_image": 0, "unsure": 0}
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            listing = io.StringIO()
            for case in self.iterate(CaseFilter(**{**filters.__dict__, "decision": filters.decision or "any"})):
                folder = DECISION_FOLDERS.get(case.decision or "")
                if folder is None:
                    counts["unsure"] += 1
                    continue
                stored = self.image(case.id) if case.has_image else None
                if stored is None:
                    counts["without_image"] += 1
                    continue
                data, media_type = stored
                name = f"{folder}/case-{case.id}-{case.sha256[:12]}{EXTENSIONS.get(media_type, '.bin')}"
                archive.writestr(name, data)
                listing.write(json.dumps({"file": name, **case.model_dump(mode="json", exclude={"response"})}) + "\n")
                counts[folder] += 1
            archive.writestr("cases.jsonl", listing.getvalue())
        return counts


def _csv_row(values: dict[str, Any]) -> dict[str, Any]:
    # A spreadsheet would run a cell starting with = + - @ as a formula: file names and notes come from users.
    return {
        key: ("'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value)
        for key, value in values.items()
        if key in EXPORT_FIELDS
    }


def open_store(url: str, image_retention: timedelta = timedelta(days=30), synchronous_commit: bool = True) -> CaseStore:
    store = CaseStore(url, image_retention, synchronous_commit)
    store.migrate()
    return store
