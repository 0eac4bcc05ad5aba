"""Snooze: after a spike, an issue raises no new spike until its lock expires.

Owns the per-issue lock ``{p:<project>}:snooze:<issue>`` (``SET NX EX``, so the first worker
to take it wins and Redis forgets it on time). It never decides spikes and never publishes.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from schemas.redis_keys import project_tag


def snooze_key(project_id: int, issue_id: str) -> str:
    return f"{project_tag(project_id)}:snooze:{issue_id}"


async def acquire_snoozes(
    redis: Redis, project_id: int, issue_ids: Iterable[str], seconds: int
) -> set[str]:
    """Take the snooze lock of each issue in one round trip; return the issues that got it."""
    wanted = list(dict.fromkeys(issue_ids))
    if not wanted:
        return set()
    async with redis.pipeline(transaction=False) as pipe:
        for issue_id in wanted:
            pipe.set(snooze_key(project_id, issue_id), "1", nx=True, ex=seconds)
        taken = await pipe.execute()
    return {issue_id for issue_id, ok in zip(wanted, taken, strict=True) if ok}


async def release_snooze(redis: Redis, project_id: int, issue_id: str) -> None:
    await redis.delete(snooze_key(project_id, issue_id))
