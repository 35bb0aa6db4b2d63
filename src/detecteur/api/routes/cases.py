"""`/v1/cases`: the record of every check — list (filters, cursor pages), read, review (PATCH), erase, export."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from detecteur.api.errors import ServiceError
from detecteur.api.schemas import ErrorResponse, VerdictLabel
from detecteur.api.security import API_KEY_NAME
from detecteur.cases.models import CaseDetail, CasePage, CaseUpdate, DecisionFilter
from detecteur.cases.queries import CaseFilter
from detecteur.cases.store import CaseStore

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (401, 404, 422, 503)}
router = APIRouter(prefix="/v1/cases", tags=["cases"], responses=ERRORS)


def case_store(request: Request) -> CaseStore:
    state = request.app.state.service
    if state.store is None:
        if not state.settings.cases:
            raise ServiceError(404, "cases_off", "the cases store is off on this server (DETECTEUR_CASES=false)")
        raise ServiceError(503, "cases_unavailable", f"the cases database is not reachable: {state.store_error}")
    store: CaseStore = state.store
    return store


Store = Annotated[CaseStore, Depends(case_store)]


def case_filter(
    verdict: Annotated[VerdictLabel | None, Query(description="The model's verdict.")] = None,
    decision: Annotated[
        DecisionFilter | None, Query(description='A reviewer decision, "none" (not reviewed) or "any" (reviewed).')
    ] = None,
    model_version: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="Judged at or after (ISO 8601; UTC when no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Judged before (ISO 8601; UTC when no zone).")] = None,
    sha256: Annotated[str | None, Query(pattern="^[0-9a-fA-F]{64}$")] = None,
    kind: Annotated[Literal["image", "video"] | None, Query()] = None,
    disagreements: Annotated[
        bool, Query(description="Only cases whose reviewer-confirmed label differs from the model's verdict.")
    ] = False,
) -> CaseFilter:
    return CaseFilter(
        verdict=verdict,
        decision=decision,
        model_version=model_version,
        since=since,
        until=until,
        sha256=sha256,
        kind=kind,
        disagreements=disagreements,
    )


Filters = Annotated[CaseFilter, Depends(case_filter)]


@router.get("", response_model=CasePage)
async def list_cases(
    store: Store,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CasePage:
    """Cases newest first, filtered; follow `next_cursor` for older ones."""
    try:
        return await anyio.to_thread.run_sync(lambda: store.list(filters, cursor, limit))
    except ValueError as error:
        raise ServiceError(422, "invalid_cursor", "the cursor is not one this API gave") from error


@router.get("/export", response_class=Response)
async def export_cases(store: Store, filters: Filters, format: Literal["csv", "jsonl", "zip"] = "jsonl") -> Response:
    """Every matching case: `csv` (one row a case), `jsonl` (the full records, responses included) or `zip` — the
    stored images of the reviewed cases in `real/` and `fake/` by the reviewer's label, the labelled folder
    `detecteur data manifest` reads (with `disagreements=true`: the next training round's hard cases)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    disposition = {"Content-Disposition": f'attachment; filename="cases-{stamp}.{format}"'}
    if format == "csv":
        return StreamingResponse(store.export_csv(filters), media_type="text/csv; charset=utf-8", headers=disposition)
    if format == "jsonl":
        return StreamingResponse(store.export_jsonl(filters), media_type="application/x-ndjson", headers=disposition)

    def build() -> tempfile.SpooledTemporaryFile[bytes]:
        spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 - closed by chunks()
        store.export_labelled_folder(spool, filters)
        spool.seek(0)
        return spool

    spool = await anyio.to_thread.run_sync(build)

    def chunks() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(1024 * 1024):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/zip", headers=disposition)


async def _existing(store: CaseStore, case_id: int) -> CaseDetail:
    case = await anyio.to_thread.run_sync(store.get, case_id)
    if case is None:
        raise ServiceError(404, "not_found", f"no case {case_id}")
    return case


@router.get("/{case_id}", response_model=CaseDetail)
async def get_case(store: Store, case_id: int) -> CaseDetail:
    """One case with the full response the API gave."""
    return await _existing(store, case_id)


@router.patch("/{case_id}", response_model=CaseDetail)
async def review_case(store: Store, case_id: int, update: CaseUpdate, request: Request) -> CaseDetail:
    """A reviewer's decision and/or note; the API key's name is recorded as `decided_by`."""
    changes = update.model_dump(include=update.model_fields_set)
    by = request.scope.get(API_KEY_NAME)
    case = await anyio.to_thread.run_sync(lambda: store.update(case_id, changes, by=by))
    if case is None:
        raise ServiceError(404, "not_found", f"no case {case_id}")
    return case


@router.delete("/{case_id}", status_code=204, response_class=Response)
async def delete_case(store: Store, case_id: int) -> Response:
    """Erase the case: its record, its stored image and thumbnail."""
    if not await anyio.to_thread.run_sync(store.delete, case_id):
        raise ServiceError(404, "not_found", f"no case {case_id}")
    return Response(status_code=204)


@router.get("/{case_id}/image", response_class=Response)
async def case_image(store: Store, case_id: int) -> Response:
    """The uploaded bytes, when the server keeps them (`store_images`) and the retention period has not passed."""
    stored = await anyio.to_thread.run_sync(store.image, case_id)
    if stored is None:
        raise ServiceError(404, "not_found", f"no stored image for case {case_id}")
    data, media_type = stored
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, no-store"})


@router.get("/{case_id}/thumbnail", response_class=Response)
async def case_thumbnail(store: Store, case_id: int) -> Response:
    """A small JPEG of the image, when the server keeps them (`case_thumbnails`)."""
    data = await anyio.to_thread.run_sync(store.thumbnail, case_id)
    if data is None:
        raise ServiceError(404, "not_found", f"no thumbnail for case {case_id}")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})
