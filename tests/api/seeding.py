"""Rows only the worker writes (issues, spike events, symbol sets, stack frames), inserted
directly with SQLAlchemy so the API's read endpoints have something to show."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.tables import Issue, Release, SpikeEvent, StackFrame, SymbolSet

Sessionmaker = async_sessionmaker[AsyncSession]


async def add_issue(
    sessionmaker: Sessionmaker, project_id: int, name: str, description: str
) -> Issue:
    return await _add(
        sessionmaker, Issue(project_id=project_id, name=name, description=description)
    )


async def add_spike_event(
    sessionmaker: Sessionmaker,
    issue: Issue,
    detected_at: datetime,
    computed_baseline: float,
    current_bucket_value: int,
) -> SpikeEvent:
    return await _add(
        sessionmaker,
        SpikeEvent(
            id=uuid.uuid4(),
            project_id=issue.project_id,
            issue_id=issue.id,
            detected_at=detected_at,
            computed_baseline=computed_baseline,
            current_bucket_value=current_bucket_value,
            bucket_start=detected_at.replace(second=0, microsecond=0),
            threshold=500,
            multiplier=10,
        ),
    )


async def add_release(
    sessionmaker: Sessionmaker, project_id: int, version: str, hash_id: str
) -> Release:
    return await _add(
        sessionmaker,
        Release(team_id=project_id, version=version, project="web", hash_id=hash_id),
    )


async def add_symbol_set(
    sessionmaker: Sessionmaker, project_id: int, ref: str, release: Release | None
) -> SymbolSet:
    return await _add(
        sessionmaker,
        SymbolSet(project_id=project_id, ref=ref, release_id=release.id if release else None),
    )


async def add_stack_frame(
    sessionmaker: Sessionmaker,
    project_id: int,
    raw_id: str,
    symbol_set: SymbolSet | None = None,
    contents: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> StackFrame:
    frame = StackFrame(
        project_id=project_id,
        raw_id=raw_id,
        symbol_set_id=symbol_set.id if symbol_set else None,
        contents=contents or {"function": "index", "filename": "app/views.py", "lineno": 10},
        resolved=True,
        context={"line": "raise TypeError()"},
    )
    if created_at is not None:
        frame.created_at = created_at
    return await _add(sessionmaker, frame)


async def _add(sessionmaker: Sessionmaker, row: Any) -> Any:
    async with sessionmaker() as session:
        session.add(row)
        await session.commit()
        return row
