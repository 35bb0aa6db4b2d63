"""What the cases API reads and writes (pydantic): the store returns these, the routes serve them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["confirmed_synthetic", "confirmed_authentic", "unsure"]
DECISIONS: tuple[str, ...] = ("confirmed_synthetic", "confirmed_authentic", "unsure")
# `decision=` filter values beyond the three decisions.
DecisionFilter = Literal["confirmed_synthetic", "confirmed_authentic", "unsure", "none", "any"]


class SeenBefore(BaseModel):
    """The same bytes were judged before: the most recent earlier case, and how many there were."""

    case_id: int
    created_at: datetime
    verdict: str
    model_version: str
    decision: Decision | None
    times: int = Field(description="Earlier cases with the same sha256.")


class CaseLink(BaseModel):
    id: int = Field(description="The case recorded for this file: GET /v1/cases/{id}.")
    seen_before: SeenBefore | None = None


class CaseSummary(BaseModel):
    id: int
    created_at: datetime
    kind: Literal["image", "video"]
    sha256: str
    size_bytes: int
    media_type: str
    filename: str | None
    verdict: str
    fake_probability: float
    model_version: str
    api_key_name: str | None = Field(description="The name of the API key that asked (never the key).")
    previous_case_id: int | None = Field(description="The most recent earlier case with the same bytes.")
    decision: Decision | None
    note: str | None
    decided_at: datetime | None
    decided_by: str | None
    has_image: bool = Field(description="The uploaded bytes are stored (GET /v1/cases/{id}/image).")
    has_thumbnail: bool
    disagreement: bool = Field(description="A reviewer's confirmed label differs from the model's verdict.")


class CaseDetail(CaseSummary):
    response: dict[str, Any] = Field(description="The API's full answer for this file when it was judged.")


class CasePage(BaseModel):
    cases: list[CaseSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last.")


class CaseUpdate(BaseModel):
    """Only the fields sent change; `null` clears one."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision | None = None
    note: str | None = Field(None, max_length=10_000)
