"""Deleting every Redis key of some projects: their counts, buckets, watermarks, token buckets,
snooze locks and config versions. The bench does it at the end of a run (a 1,000,000-fingerprint
run would otherwise leave over a million keys until their TTLs, about an hour, run out, and slow
down whatever scans that Redis next); the tests do it after each test.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from schemas.redis_keys import project_tag

SCAN_COUNT = 10_000
UNLINK_CHUNK = 1_000


async def forget_projects(redis: Redis, project_ids: Iterable[int]) -> int:
    """Delete every key of ``project_ids`` in one pass over the keyspace; the number deleted."""
    project_ids = list(project_ids)
    if not project_ids:
        return 0
    tags = {project_tag(project_id).encode() for project_id in project_ids}
    removed = 0
    doomed: list[bytes] = []
    async for key in redis.scan_iter(match="{p:*", count=SCAN_COUNT):
        if key[: key.find(b"}") + 1] in tags:
            doomed.append(key)
        if len(doomed) >= UNLINK_CHUNK:
            removed += await redis.unlink(*doomed)
            doomed.clear()
    if doomed:
        removed += await redis.unlink(*doomed)
    return removed
