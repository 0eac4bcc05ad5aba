"""Spike events: the spikes the worker detected, newest first, with the issue each belongs to.

Read-only: the worker writes spike events; the API only lists and filters them. Like the
reference, a blank filter (``?date_to=``) filters nothing and an unknown ``order_by`` falls back to
the default order, so clients that send every parameter of a form keep working.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel, BeforeValidator, WithJsonSchema
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from api.deps import ReadableProject, Session
from api.errors import error_responses, invalid
from api.pagination import Page, Pagination, paginate
from api.routing import UUID_PATTERN, ApiRouter
from schemas.tables import SpikeEvent

# Comma-separated ids; blanks around an id and empty items are allowed ("a, b," is a and b).
ISSUE_IDS_PATTERN = f"^ *({UUID_PATTERN})? *(, *({UUID_PATTERN})? *)*$"
# Only ISO 8601 text is a date: pydantic alone would also read "0" or "0.5" as seconds since 1970.
_ISO_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?"
)


def _iso_date_time(value: object) -> object:
    if isinstance(value, str) and not _ISO_DATE_TIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-11-26T06:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_date_time)]


def _blank_is_absent(value: object) -> object:
    return None if value == "" else value


def _or_blank(schema: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [schema, {"const": ""}]})


BlankableIssueId = Annotated[
    uuid.UUID | None,
    BeforeValidator(_blank_is_absent),
    _or_blank({"type": "string", "format": "uuid"}),
]
BlankableDateTime = Annotated[
    IsoDateTime | None,
    BeforeValidator(_blank_is_absent),
    _or_blank({"type": "string", "format": "date-time"}),
]

ORDERABLE_FIELDS = ("detected_at", "computed_baseline", "current_bucket_value")
DEFAULT_ORDER = "-detected_at"

router = ApiRouter(
    prefix="/api/projects/{project_id}/error_tracking/spike_events",
    tags=["spike events"],
    responses=error_responses(400, 401, 403, 404, 503),
)


class IssueRef(BaseModel):
    id: uuid.UUID
    name: str | None
    description: str | None


class SpikeEventOut(BaseModel):
    id: uuid.UUID
    issue: IssueRef
    detected_at: datetime
    computed_baseline: float
    current_bucket_value: int

    @classmethod
    def of(cls, event: SpikeEvent) -> SpikeEventOut:
        return cls(
            id=event.id,
            issue=IssueRef(
                id=event.issue.id, name=event.issue.name, description=event.issue.description
            ),
            detected_at=event.detected_at,
            computed_baseline=event.computed_baseline,
            current_bucket_value=event.current_bucket_value,
        )


@router.get("/", response_model=Page[SpikeEventOut])
async def list_spike_events(
    project_id: ReadableProject,
    session: Session,
    page: Pagination,
    request: Request,
    issue_id: Annotated[BlankableIssueId, Query(description="Only this issue's spikes.")] = None,
    issue_ids: Annotated[
        str | None,
        Query(
            description="Only these issues' spikes: comma-separated ids.",
            pattern=ISSUE_IDS_PATTERN,
        ),
    ] = None,
    date_from: Annotated[BlankableDateTime, Query(description="Detected at or after.")] = None,
    date_to: Annotated[BlankableDateTime, Query(description="Detected at or before.")] = None,
    order_by: Annotated[
        str,
        Query(
            description=(
                f"One of {', '.join(ORDERABLE_FIELDS)}, ascending, or descending with a leading "
                f"'-'. Anything else is the default, {DEFAULT_ORDER}."
            )
        ),
    ] = DEFAULT_ORDER,
) -> Page[SpikeEventOut]:
    statement = (
        select(SpikeEvent)
        .where(SpikeEvent.project_id == project_id)
        .options(joinedload(SpikeEvent.issue))
    )
    wanted_issues = _issue_ids(issue_id, issue_ids)
    if wanted_issues:
        statement = statement.where(SpikeEvent.issue_id.in_(wanted_issues))
    if date_from is not None:
        statement = statement.where(SpikeEvent.detected_at >= _utc(date_from, "date_from"))
    if date_to is not None:
        statement = statement.where(SpikeEvent.detected_at <= _utc(date_to, "date_to"))
    # The id breaks ties so that pages never overlap or skip a spike.
    statement = statement.order_by(_ordering(order_by), SpikeEvent.id)
    return await paginate(session, statement, page, request, SpikeEventOut.of)


def _issue_ids(issue_id: uuid.UUID | None, issue_ids: str | None) -> set[uuid.UUID]:
    """The wanted issues; ``issue_ids`` already matched ISSUE_IDS_PATTERN, so each item parses."""
    wanted = {issue_id} if issue_id is not None else set()
    wanted.update(uuid.UUID(text.strip()) for text in (issue_ids or "").split(",") if text.strip())
    return wanted


def _ordering(order_by: str) -> Any:
    if order_by.removeprefix("-") not in ORDERABLE_FIELDS:
        order_by = DEFAULT_ORDER
    column = getattr(SpikeEvent, order_by.removeprefix("-"))
    return column.desc() if order_by.startswith("-") else column.asc()


def _utc(moment: datetime, attr: str) -> datetime:
    """A naive time is UTC; a time that cannot be expressed in UTC is a client error."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid("Date is out of range.", attr) from None
