"""The bench leaves nothing behind in Redis: at the end of a run every key of its projects (counts,
buckets, watermarks, token buckets, snooze locks) and their config versions are deleted. A
1,000,000-fingerprint run would otherwise leave over a million keys until their TTLs (about an
hour) run out, and slow down whatever scans that Redis next.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from schemas.redis_keys import CONFIG_VERSIONS_KEY, project_tag

SCAN_COUNT = 10_000
UNLINK_CHUNK = 1_000


async def forget_projects(redis_url: str, project_ids: Iterable[int]) -> int:
    """Delete every key of ``project_ids`` in one pass over the keyspace; the number deleted."""
    tags = {project_tag(project_id).encode() for project_id in project_ids}
    if not tags:
        return 0
    client = Redis.from_url(redis_url)
    removed = 0
    try:
        doomed: list[bytes] = []
        async for key in client.scan_iter(match="{p:*", count=SCAN_COUNT):
            if key[: key.find(b"}") + 1] in tags:
                doomed.append(key)
            if len(doomed) >= UNLINK_CHUNK:
                removed += await client.unlink(*doomed)
                doomed.clear()
        if doomed:
            removed += await client.unlink(*doomed)
        await client.hdel(CONFIG_VERSIONS_KEY, *(tag[3:-1] for tag in tags))
    finally:
        await client.aclose()
    return removed
