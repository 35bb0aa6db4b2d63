"""The cases store, each test run against SQLite and a throw-away PostgreSQL 15 cluster (conftest `database_url`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect

from detecteur.cases.queries import CaseFilter, decode_cursor
from detecteur.cases.store import CaseStore, NewCase, open_store
from detecteur.cases.tables import Base
from detecteur.training.data import scan_dataset

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_case(n: int, **overrides: object) -> NewCase:
    fields: dict[str, object] = {
        "kind": "image",
        "sha256": hashlib.sha256(str(n).encode()).hexdigest(),
        "size_bytes": 1000 + n,
        "media_type": "image/jpeg",
        "filename": f"img-{n}.jpg",
        "verdict": ("authentic", "synthetic", "borderline")[n % 3],
        "fake_probability": (n % 100) / 100,
        "model_version": "m1" if n % 2 else "m2",
        "response": {"verdict": "x", "faces": [{"box": {"x": n, "y": 0, "width": 5, "height": 5}}]},
        "api_key_name": "alice",
    }
    return NewCase(**(fields | overrides))  # type: ignore[arg-type]


@pytest.fixture
def store(database_url: str) -> Iterator[CaseStore]:
    opened = open_store(database_url, image_retention=timedelta(days=7))
    yield opened
    opened.close()


def test_migrations_build_the_schema_the_code_declares_and_rerun_as_a_no_op(store: CaseStore) -> None:
    assert store.schema_revision() == CaseStore.head_revision() == "0002"
    store.migrate()  # a second start finds nothing to do
    inspector = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        declared = {column.name: column.nullable for column in table.columns}
        migrated = {column["name"]: column["nullable"] for column in inspector.get_columns(table.name)}
        assert migrated == declared, table.name
        declared_indexes = {tuple(column.name for column in index.columns) for index in table.indexes}
        migrated_indexes = {tuple(index["column_names"]) for index in inspector.get_indexes(table.name)}
        assert declared_indexes <= migrated_indexes, table.name


def test_a_case_is_recorded_whole_and_read_back(store: CaseStore) -> None:
    case = new_case(1, thumbnail=b"\xff\xd8thumb", image=b"the bytes")
    case_id, seen = store.record(case, now=T0)
    assert seen is None
    got = store.get(case_id)
    assert got is not None
    assert (got.sha256, got.size_bytes, got.media_type, got.filename) == (case.sha256, 1001, "image/jpeg", "img-1.jpg")
    assert (got.verdict, got.model_version, got.api_key_name) == ("synthetic", "m1", "alice")
    assert got.response == case.response
    assert got.created_at == T0
    assert got.has_image and got.has_thumbnail and got.decision is None
    assert store.image(case_id) == (b"the bytes", "image/jpeg")
    assert store.thumbnail(case_id) == b"\xff\xd8thumb"
    assert store.get(case_id + 1000) is None


def test_the_same_bytes_judged_again_link_to_the_most_recent_earlier_case(store: CaseStore) -> None:
    first, _ = store.record(new_case(1), now=T0)
    store.record(new_case(2), now=T0)
    store.update(first, {"decision": "confirmed_authentic"})
    second, seen = store.record(new_case(1, model_version="m9"), now=T0 + timedelta(days=1))
    assert seen is not None
    assert (seen.case_id, seen.created_at, seen.verdict, seen.decision, seen.times) == (
        first,
        T0,
        "synthetic",
        "confirmed_authentic",
        1,
    )
    third, seen = store.record(new_case(1), now=T0 + timedelta(days=2))
    assert seen is not None and (seen.case_id, seen.model_version, seen.times) == (second, "m9", 2)
    assert store.get(third).previous_case_id == second  # type: ignore[union-attr]


def test_listing_filters_and_pages_with_a_cursor(store: CaseStore) -> None:
    ids = [store.record(new_case(n), now=T0 + timedelta(hours=n))[0] for n in range(30)]
    store.update(ids[3], {"decision": "confirmed_authentic"})  # n=3: authentic → agrees
    store.update(ids[4], {"decision": "confirmed_authentic"})  # n=4: synthetic → disagrees
    store.update(ids[5], {"decision": "confirmed_synthetic"})  # n=5: borderline → disagrees
    store.update(ids[6], {"decision": "unsure"})

    seen: list[int] = []
    cursor = None
    while True:
        page = store.list(cursor=cursor, limit=7)
        seen += [case.id for case in page.cases]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True)

    def ids_of(**filters: object) -> set[int]:
        return {case.id for case in store.list(CaseFilter(**filters), limit=500).cases}  # type: ignore[arg-type]

    assert ids_of(verdict="synthetic") == {ids[n] for n in range(30) if n % 3 == 1}
    assert ids_of(model_version="m1") == {ids[n] for n in range(30) if n % 2}
    assert ids_of(decision="confirmed_authentic") == {ids[3], ids[4]}
    assert ids_of(decision="any") == {ids[3], ids[4], ids[5], ids[6]}
    assert len(ids_of(decision="none")) == 26
    assert ids_of(disagreements=True) == {ids[4], ids[5]}
    assert ids_of(sha256=new_case(7).sha256.upper()) == {ids[7]}
    assert ids_of(since=T0 + timedelta(hours=10), until=T0 + timedelta(hours=12)) == {ids[10], ids[11]}
    assert ids_of(verdict="authentic", model_version="m2", since=T0 + timedelta(hours=20)) == {ids[24]}
    assert store.count(CaseFilter(verdict="borderline")) == 10
    with pytest.raises(ValueError):
        decode_cursor("not-a-cursor")


def test_a_date_range_pages_in_time_order_with_ties_and_late_clocks(store: CaseStore) -> None:
    # Cases from servers whose clocks disagree: ids and times not in the same order, and times that tie.
    hours = [5, 1, 3, 3, 3, 0, 7, 2, 3, 6, 4, 4]
    ids = [store.record(new_case(n), now=T0 + timedelta(hours=h))[0] for n, h in enumerate(hours)]
    dated = CaseFilter(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=7))
    seen: list[int] = []
    cursor = None
    while True:
        page = store.list(dated, cursor=cursor, limit=2)
        seen += [case.id for case in page.cases]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = sorted((T0 + timedelta(hours=h), i) for i, h in zip(ids, hours, strict=True) if 1 <= h < 7)
    assert seen == [i for _, i in reversed(expected)]  # newest first, each case once, ties by id
    assert [case.id for case in store.iterate(dated, batch=3)] == seen
    with pytest.raises(ValueError):  # a cursor from a listing in id order does not page a date range
        store.list(dated, cursor=store.list(limit=2).next_cursor)


def test_a_write_survives_a_connection_the_server_dropped(store: CaseStore) -> None:
    store.record(new_case(1))
    if store.dialect != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as outside:  # the server ends the pooled sessions (restart, timeout)
        outside.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    case_id, seen = store.record(new_case(1))
    assert store.get(case_id) is not None and seen is not None and seen.times == 1


def test_a_reviewer_decides_notes_and_clears(store: CaseStore) -> None:
    case_id, _ = store.record(new_case(1))
    decided = store.update(case_id, {"decision": "confirmed_authentic", "note": "a real photo"}, by="bob")
    assert decided is not None
    assert (decided.decision, decided.note, decided.decided_by, decided.disagreement) == (
        "confirmed_authentic",
        "a real photo",
        "bob",
        True,
    )
    assert decided.decided_at is not None
    noted = store.update(case_id, {"note": "checked the source"})
    assert noted is not None and (noted.decision, noted.note) == ("confirmed_authentic", "checked the source")
    cleared = store.update(case_id, {"decision": None})
    assert cleared is not None and cleared.decision is None and cleared.decided_at is None
    assert store.update(case_id + 1000, {"note": "x"}) is None


def test_delete_erases_the_record_and_its_image(store: CaseStore) -> None:
    first, _ = store.record(new_case(1, image=b"secret"))
    second, _ = store.record(new_case(1))
    assert store.delete(first)
    assert store.get(first) is None and store.image(first) is None
    assert store.get(second).previous_case_id is None  # type: ignore[union-attr]
    assert not store.delete(first)


def test_images_and_thumbnails_expire_and_the_records_stay(store: CaseStore) -> None:
    old, _ = store.record(new_case(1, image=b"old", thumbnail=b"t"), now=T0)
    new, _ = store.record(new_case(2, image=b"new", thumbnail=b"t"), now=T0 + timedelta(days=6))
    assert store.purge_expired_images(now=T0 + timedelta(days=7, seconds=1)) == 1
    assert store.image(old) is None and store.thumbnail(old) is None
    assert store.get(old) is not None and not store.get(old).has_image  # type: ignore[union-attr]
    assert store.image(new) == (b"new", "image/jpeg") and store.thumbnail(new) == b"t"


def test_exports_carry_every_matching_case(store: CaseStore) -> None:
    for n in range(5):
        store.record(new_case(n, filename="=cmd()" if n == 0 else f"img-{n}.jpg"))
    lines = "".join(store.export_jsonl()).splitlines()
    assert [json.loads(line)["filename"] for line in lines][-1] == "=cmd()"
    assert all("response" in json.loads(line) for line in lines)
    rows = list(csv.DictReader(io.StringIO("".join(store.export_csv(CaseFilter(model_version="m1"))))))
    assert [row["filename"] for row in rows] == ["img-3.jpg", "img-1.jpg"]
    formula = list(csv.DictReader(io.StringIO("".join(store.export_csv()))))[-1]
    assert formula["filename"] == "'=cmd()"  # never run as a spreadsheet formula


def test_the_disagreements_export_is_a_labelled_folder_detecteur_data_reads(store: CaseStore, tmp_path: Path) -> None:
    from PIL import Image

    def jpeg(shade: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (shade, shade, shade)).save(buffer, format="JPEG")
        return buffer.getvalue()

    agree, _ = store.record(new_case(3, image=jpeg(10)))  # authentic, confirmed authentic
    fake, _ = store.record(new_case(4, image=jpeg(20)))  # synthetic, confirmed authentic
    real, _ = store.record(new_case(5, image=jpeg(30)))  # borderline, confirmed synthetic
    no_image, _ = store.record(new_case(7))  # synthetic, confirmed authentic, image not kept
    for case_id, decision in ((agree, "confirmed_authentic"), (fake, "confirmed_authentic")):
        store.update(case_id, {"decision": decision})
    store.update(real, {"decision": "confirmed_synthetic"})
    store.update(no_image, {"decision": "confirmed_authentic"})
    buffer = io.BytesIO()
    counts = store.export_labelled_folder(buffer, CaseFilter(disagreements=True))
    assert counts == {"real": 1, "fake": 1, "without_image": 1, "unsure": 0}
    folder = tmp_path / "reviewed"
    zipfile.ZipFile(buffer).extractall(folder)
    records = scan_dataset(folder)
    labels = {record.path.name.split("-")[1]: record.label for record in records}
    assert labels == {str(fake): 0, str(real): 1}  # the reviewer's label: 0 authentic, 1 synthetic


def test_concurrent_writers_lose_nothing(store: CaseStore) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(25):
                store.record(new_case(worker * 1000 + n % 5))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert store.count() == 200


def test_synchronous_commit_off_is_asked_of_postgresql_only_when_set(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    for synchronous, expected in ((True, "on"), (False, "off")):
        store = open_store(database_url, synchronous_commit=synchronous)
        try:
            with store.engine.connect() as connection:
                assert connection.exec_driver_sql("SHOW synchronous_commit").scalar_one() == expected
        finally:
            store.close()
