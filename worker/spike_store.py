"""The database side of a spike: the issue a spike event names, and the stored spike event row.

Issues are read in one query per batch of spikes behind a bounded cache (a spiking issue keeps
crossing on every batch while it is snoozed). The row is inserted by its deterministic id with
ON CONFLICT DO NOTHING, so a retried spike never duplicates it. Never edits an issue.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import SpikeEventMessage, SpikeIssue
from schemas.tables import Issue, SpikeEvent
from worker.lru import LruCache
from worker.retry import retry_infrastructure
from worker.upserts import chunked, insert_if_absent

# Only spiking issues pass through here, so a small cache holds all that matter at one time.
ISSUE_CACHE_SIZE = 10_000


class SpikeStore:
    def __init__(self, engine: AsyncEngine, *, issue_cache_size: int = ISSUE_CACHE_SIZE) -> None:
        self._engine = engine
        self._issues: LruCache[str, SpikeIssue] = LruCache(issue_cache_size)

    async def issues(self, issue_ids: Collection[str]) -> dict[str, SpikeIssue]:
        """The id, name and description of each of ``issue_ids`` that exists."""
        found = {i: issue for i in issue_ids if (issue := self._issues.get(i)) is not None}
        missing = sorted(set(issue_ids) - found.keys())
        if missing:
            loaded = await retry_infrastructure(
                lambda: self._load_issues(missing), dependency="database"
            )
            for issue_id, issue in loaded.items():
                self._issues.put(issue_id, issue)
            found.update(loaded)
        return found

    async def save(self, spike: SpikeEventMessage) -> None:
        """Insert the spike event unless a row with its id exists (a retry of the same spike)."""
        await retry_infrastructure(lambda: self._insert(spike), dependency="database")

    async def _load_issues(self, issue_ids: list[str]) -> dict[str, SpikeIssue]:
        loaded: dict[str, SpikeIssue] = {}
        async with self._engine.connect() as connection:
            for chunk in chunked(issue_ids):
                rows = await connection.execute(
                    select(Issue.id, Issue.name, Issue.description).where(
                        Issue.id.in_([uuid.UUID(issue_id) for issue_id in chunk])
                    )
                )
                for row in rows:
                    loaded[str(row.id)] = SpikeIssue(str(row.id), row.name, row.description)
        return loaded

    async def _insert(self, spike: SpikeEventMessage) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                insert_if_absent(SpikeEvent, connection.dialect.name).values(
                    id=uuid.UUID(spike.id),
                    project_id=spike.project_id,
                    issue_id=uuid.UUID(spike.issue.id),
                    detected_at=datetime.fromisoformat(spike.detected_at),
                    computed_baseline=spike.computed_baseline,
                    current_bucket_value=spike.current_bucket_value,
                    bucket_start=datetime.fromisoformat(spike.bucket_start),
                    threshold=spike.threshold,
                    multiplier=spike.multiplier,
                )
            )
