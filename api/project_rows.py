"""Per-project singleton rows (error tracking settings, spike detection config): created with
their defaults the first time anyone reads them, as in the reference.

Two first reads may race; the primary key lets only one insert win and the other reads its row.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.tables import ErrorTrackingSettings, SpikeDetectionConfig

RowT = TypeVar("RowT", ErrorTrackingSettings, SpikeDetectionConfig)


async def get_or_create(session: AsyncSession, model: type[RowT], project_id: int) -> RowT:
    row = await session.get(model, project_id)
    if row is not None:
        return row
    row = model(project_id=project_id)
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await session.get(model, project_id)
        if existing is None:
            raise
        return existing
    return row
