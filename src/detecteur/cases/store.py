"""`CaseStore`: records, lists, updates, erases and exports cases. Synchronous (SQLAlchemy 2 Core/ORM); the
service calls it from worker threads. Every write is one transaction: once `record` returns, the case survives a
crash of the process (SQLite in WAL mode, PostgreSQL's commit)."""

from __future__ import annotations

import builtins
import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import IO, Any, TypeVar

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BindParameter,
    DateTime,
    LargeBinary,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from detecteur.cases.connection import alembic_config, create_store_engine
from detecteur.cases.models import CaseDetail, CasePage, CaseSummary, SeenBefore
from detecteur.cases.queries import (
    _PREVIOUS_COLUMNS,
    CaseFilter,
    Cursor,
    _cursor_after,
    _page_ids,
    _seen_before,
    _summary,
    _summary_select,
    _utc,
    decode_cursor,
    encode_cursor,
    now_utc,
)
from detecteur.cases.tables import CaseImageRow, CaseRow

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


# Every case: the default filter (one shared value — a frozen dataclass).
ALL_CASES = CaseFilter()


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


def _latest_case_of_bytes() -> Select[Any]:
    """The most recent case of the bytes whose digest is the parameter `sha256`, with how many there are: the row
    through the (sha256, id) index, the count as a subquery on that index alone. A window count (`count() OVER ()`)
    read every such row in full first: 6 ms a case for bytes judged 5 000 times before, where this takes a fraction
    of one."""
    sha256: BindParameter[str] = bindparam("sha256")
    times = select(func.count()).where(CaseRow.sha256 == sha256).scalar_subquery()
    return (
        select(*_PREVIOUS_COLUMNS, times.label("times"))
        .where(CaseRow.sha256 == sha256)
        .order_by(CaseRow.id.desc())
        .limit(1)
    )


_LATEST_CASE_OF_BYTES = _latest_case_of_bytes()


def _record_in_one_statement(with_image: bool) -> Select[Any]:
    """PostgreSQL's `record` (`CaseStore._record_in_one_statement`): the latest case of the bytes (parameter
    `sha256`), the new case (`new_<column>`) inserted with it as its previous case, and with `with_image` its image
    (`image_data`, `image_expires_at`), in one statement that returns the new id and the previous case."""
    columns = CaseRow.__table__.c
    previous = _LATEST_CASE_OF_BYTES.cte("previous")
    new_values = {name: bindparam(f"new_{name}", type_=columns[name].type) for name in _RECORDED_COLUMNS}
    inserted = (
        insert(CaseRow)
        .values(**new_values, previous_case_id=select(previous.c.id).scalar_subquery())
        .returning(CaseRow.id)
        .cte("inserted")
    )
    statement = select(inserted.c.id.label("case_id"), *previous.c).select_from(inserted).outerjoin(previous, true())
    if not with_image:
        return statement
    image = (bindparam("image_data", type_=LargeBinary()), bindparam("image_expires_at", type_=DateTime(timezone=True)))
    return statement.add_cte(
        insert(CaseImageRow).from_select(["case_id", "data", "expires_at"], select(inserted.c.id, *image)).cte("image")
    )


# The case row's columns `record` writes: `NewCase`'s fields but the image (a row of its own), and when it was made.
_CASE_FIELDS_RECORDED = tuple(field.name for field in fields(NewCase) if field.name != "image")
_RECORDED_COLUMNS = ("created_at", *_CASE_FIELDS_RECORDED)
# `record`'s statements are built once, its values bound as parameters: building them with each case's values cost
# more CPU than SQLite spent executing them (~0.5 of ~0.9 ms a case), every new statement being coerced and keyed
# for the compiled cache again.
_RECORD_IN_ONE_STATEMENT = {with_image: _record_in_one_statement(with_image) for with_image in (False, True)}
_INSERT_CASE = insert(CaseRow).returning(CaseRow.id)
_INSERT_CASE_IMAGE = insert(CaseImageRow)


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
        values = {name: getattr(case, name) for name in _CASE_FIELDS_RECORDED} | {
            "created_at": now,
            "sha256": case.sha256.lower(),
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
        parameters = {"sha256": values["sha256"]} | {f"new_{name}": value for name, value in values.items()}
        if image is not None:
            parameters |= {"image_data": image["data"], "image_expires_at": image["expires_at"]}
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            row = connection.execute(_RECORD_IN_ONE_STATEMENT[image is not None], parameters).one()
        return int(row.case_id), (_seen_before(row) if row.id is not None else None)

    def _record_in_steps(self, values: dict[str, Any], image: dict[str, Any] | None) -> tuple[int, SeenBefore | None]:
        """SQLite (in-process: statements cost no round trip): lookup, insert and image in one transaction."""
        with self.engine.begin() as connection:
            previous = connection.execute(_LATEST_CASE_OF_BYTES, {"sha256": values["sha256"]}).first()
            previous_case_id = previous.id if previous is not None else None
            case_id = connection.execute(_INSERT_CASE, values | {"previous_case_id": previous_case_id}).scalar_one()
            if image is not None:
                connection.execute(_INSERT_CASE_IMAGE, {"case_id": case_id, **image})
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

    def list(self, filters: CaseFilter = ALL_CASES, cursor: str | None = None, limit: int = 50) -> CasePage:
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

    def iterate(self, filters: CaseFilter = ALL_CASES, batch: int = 1000) -> Iterator[CaseDetail]:
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

    def count(self, filters: CaseFilter = ALL_CASES) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(CaseRow).where(*filters.clauses())).scalar_one()
            )

    # --- exports ------------------------------------------------------------------------------------------------

    def export_jsonl(self, filters: CaseFilter = ALL_CASES) -> Iterator[str]:
        for case in self.iterate(filters):
            yield case.model_dump_json() + "\n"

    def export_csv(self, filters: CaseFilter = ALL_CASES) -> Iterator[str]:
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

    def export_labelled_folder(self, out: IO[bytes], filters: CaseFilter = ALL_CASES) -> dict[str, int]:
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
