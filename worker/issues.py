"""Insert-or-get the issue of every fingerprint in a batch: first sight of a fingerprint creates it.

Race-free across worker processes through the unique (project_id, fingerprint) constraint, and
batched (a few statements per batch) behind a bounded cache. Never edits an existing issue.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import ExceptionProperties
from schemas.tables import Issue, IssueFingerprint, utcnow
from worker.lru import LruCache
from worker.records import EventRecord, in_flight
from worker.retry import retry_infrastructure
from worker.upserts import chunked, insert_if_absent, pairs_match

IssueKey = tuple[int, str]  # (project_id, fingerprint)


@dataclass(frozen=True, slots=True)
class IssueSeed:
    """What a new issue is created with: taken from the first event of its fingerprint."""

    name: str | None
    description: str | None


def issue_seed(properties: ExceptionProperties) -> IssueSeed:
    """``$issue_name``/``$issue_description`` when sent, else the first exception's type/value."""
    first = properties.exception_list[0] if properties.exception_list else None
    name = properties.issue_name or (first.type if first else None)
    description = properties.issue_description or (first.value if first else None)
    return IssueSeed(name, description)


class IssueAssigner:
    def __init__(self, engine: AsyncEngine, *, cache_size: int) -> None:
        self._engine = engine
        self._known: LruCache[IssueKey, uuid.UUID] = LruCache(cache_size)

    async def assign(self, batch: Sequence[EventRecord]) -> Sequence[EventRecord]:
        """Set ``issue_id`` on every in-flight record, creating issues seen for the first time."""
        pending = in_flight(batch)
        issue_ids: dict[IssueKey, uuid.UUID] = {}
        unknown: dict[IssueKey, IssueSeed] = {}
        for record in pending:
            key = (record.project_id, _fingerprint(record))
            cached = self._known.get(key)
            if cached is not None:
                issue_ids[key] = cached
            elif key not in unknown:
                unknown[key] = issue_seed(record.known_properties)
        if unknown:
            found = await retry_infrastructure(
                lambda: self._insert_or_get(unknown), dependency="database"
            )
            for key, issue_id in found.items():
                self._known.put(key, issue_id)
            issue_ids.update(found)
        for record in pending:
            record.issue_id = issue_ids[(record.project_id, _fingerprint(record))]
        return batch

    async def _insert_or_get(
        self, seeds: Mapping[IssueKey, IssueSeed]
    ) -> dict[IssueKey, uuid.UUID]:
        async with self._engine.begin() as connection:
            stored = await _stored_issue_ids(connection, seeds.keys())
            # Sorted so concurrent workers lock fingerprints in one order and cannot deadlock.
            new_keys = sorted(key for key in seeds if key not in stored)
            if not new_keys:
                return stored
            proposed = {key: uuid.uuid4() for key in new_keys}
            await _insert_proposals(connection, proposed, seeds)
            winners = await _stored_issue_ids(connection, new_keys)
            # Another worker created some of these first: its issue wins, ours must not survive.
            losers = [proposed[key] for key in new_keys if winners.get(key) != proposed[key]]
            for chunk in chunked(losers):
                await connection.execute(delete(Issue).where(Issue.id.in_(chunk)))
            return stored | winners


async def _insert_proposals(
    connection: AsyncConnection,
    proposed: Mapping[IssueKey, uuid.UUID],
    seeds: Mapping[IssueKey, IssueSeed],
) -> None:
    now = utcnow()
    keys = list(proposed)
    upsert_fingerprint = insert_if_absent(IssueFingerprint, connection.dialect.name)
    for chunk in chunked(keys):
        await connection.execute(
            insert(Issue),
            [
                {
                    "id": proposed[key],
                    "project_id": key[0],
                    "name": seeds[key].name,
                    "description": seeds[key].description,
                    "status": "active",
                    "created_at": now,
                }
                for key in chunk
            ],
        )
        await connection.execute(
            upsert_fingerprint,
            [
                {
                    "id": uuid.uuid4(),
                    "project_id": key[0],
                    "fingerprint": key[1],
                    "issue_id": proposed[key],
                    "created_at": now,
                }
                for key in chunk
            ],
        )


async def _stored_issue_ids(
    connection: AsyncConnection, keys: Collection[IssueKey]
) -> dict[IssueKey, uuid.UUID]:
    found: dict[IssueKey, uuid.UUID] = {}
    for chunk in chunked(sorted(keys)):
        rows = await connection.execute(
            select(
                IssueFingerprint.project_id, IssueFingerprint.fingerprint, IssueFingerprint.issue_id
            ).where(pairs_match(IssueFingerprint.project_id, IssueFingerprint.fingerprint, chunk))
        )
        found.update({(row.project_id, row.fingerprint): row.issue_id for row in rows})
    return found


def _fingerprint(record: EventRecord) -> str:
    if record.fingerprint is None:
        raise ValueError("issues are assigned after fingerprinting")
    return record.fingerprint
