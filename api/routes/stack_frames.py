"""Stack frames: list, retrieve and ``batch_get`` by raw id; each frame carries its symbol set
reference and the release that shipped it.

Frames are written by the worker and are never deleted through the API (DELETE answers 405).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import joinedload

from api.deps import ReadableProject, Session, WritableProject
from api.errors import INVALID_REQUEST, ApiError, error_responses, not_found
from api.pagination import Page, Pagination, paginate
from api.request_bodies import RequestModel
from api.routes.releases import ReleaseOut
from api.routing import ApiRouter
from schemas.tables import StackFrame, SymbolSet

# Bounds one request's IN (...) list well below every driver's limit on bound parameters.
MAX_BATCH_RAW_IDS = 1000

router = ApiRouter(
    prefix="/api/projects/{project_id}/error_tracking/stack_frames",
    tags=["stack frames"],
    responses=error_responses(401, 403, 404, 503),
)


class StackFrameOut(BaseModel):
    id: uuid.UUID
    raw_id: str
    created_at: datetime
    contents: dict[str, Any]
    resolved: bool
    context: dict[str, Any] | None
    symbol_set_ref: str | None
    release: ReleaseOut | None

    @classmethod
    def of(cls, frame: StackFrame) -> StackFrameOut:
        symbol_set = frame.symbol_set
        release = symbol_set.release if symbol_set is not None else None
        return cls(
            id=frame.id,
            raw_id=frame.raw_id,
            created_at=frame.created_at,
            contents=frame.contents,
            resolved=frame.resolved,
            context=frame.context,
            symbol_set_ref=symbol_set.ref if symbol_set is not None else None,
            release=ReleaseOut.of(release) if release is not None else None,
        )


class BatchGet(RequestModel):
    raw_ids: list[str] = Field(
        default=[],
        max_length=MAX_BATCH_RAW_IDS,
        description="The raw ids wanted; none (or an empty body) asks for nothing.",
    )
    symbol_set: str | None = Field(
        default=None, description="Only frames of this symbol set (its reference or its id)."
    )


class BatchGetResults(BaseModel):
    results: list[StackFrameOut]


def _frames(project_id: int) -> Select[tuple[StackFrame]]:
    return (
        select(StackFrame)
        .where(StackFrame.project_id == project_id)
        .options(joinedload(StackFrame.symbol_set).joinedload(SymbolSet.release))
    )


@router.get("/", response_model=Page[StackFrameOut], responses=error_responses(400))
async def list_stack_frames(
    project_id: ReadableProject, session: Session, page: Pagination, request: Request
) -> Page[StackFrameOut]:
    statement = _frames(project_id).order_by(StackFrame.created_at.desc(), StackFrame.id)
    return await paginate(session, statement, page, request, StackFrameOut.of)


@router.get("/{frame_id:object_id}/", response_model=StackFrameOut)
async def retrieve_stack_frame(
    project_id: ReadableProject, session: Session, frame_id: uuid.UUID
) -> StackFrameOut:
    frame = await session.scalar(_frames(project_id).where(StackFrame.id == frame_id))
    if frame is None:
        raise not_found()
    return StackFrameOut.of(frame)


@router.delete("/{frame_id:object_id}/", status_code=405, responses=error_responses(405))
async def delete_stack_frame(project_id: WritableProject, frame_id: uuid.UUID) -> None:
    """Hard delete of a stack frame is not allowed, as in the reference: frames are the
    worker's record of the events it has seen."""
    raise ApiError(
        405,
        INVALID_REQUEST,
        "method_not_allowed",
        'Method "DELETE" not allowed.',
        headers={"Allow": "GET, HEAD"},
    )


@router.post(
    "/batch_get/", response_model=BatchGetResults, responses=error_responses(400, 413, 415)
)
async def batch_get_stack_frames(
    project_id: ReadableProject, session: Session, body: BatchGet
) -> BatchGetResults:
    if not body.raw_ids:
        return BatchGetResults(results=[])
    statement = _frames(project_id).where(StackFrame.raw_id.in_(set(body.raw_ids)))
    if body.symbol_set is not None:
        statement = statement.join(StackFrame.symbol_set).where(_symbol_set_is(body.symbol_set))
    frames = (await session.scalars(statement.order_by(StackFrame.raw_id, StackFrame.id))).all()
    return BatchGetResults(results=[StackFrameOut.of(frame) for frame in frames])


def _symbol_set_is(reference: str) -> Any:
    try:
        symbol_set_id = uuid.UUID(reference)
    except ValueError:
        return SymbolSet.ref == reference
    return or_(SymbolSet.ref == reference, SymbolSet.id == symbol_set_id)
