"""Snooze: after a spike, an issue raises no new spike until its lock expires.

Owns the per-issue lock ``{p:<project>}:snooze:<issue>`` (``SET NX EX``, so the first worker
to take it wins and Redis forgets it on time). It never decides spikes and never publishes.

The lock's value says which spike took it and whether that spike is known to be out:
``pending:<spike id>`` from the moment it is taken, ``published:<spike id>`` once the broker
acknowledged the spike. A worker that dies in between leaves a pending lock; the batch that is
redelivered then finds its own spike's id there and publishes it (again, perhaps: same id, so
whoever listens can deduplicate) rather than losing it for the whole snooze.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from schemas.redis_keys import project_tag

PENDING = "pending:"
PUBLISHED = "published:"


def snooze_key(project_id: int, issue_id: str) -> str:
    return f"{project_tag(project_id)}:snooze:{issue_id}"


@dataclass(frozen=True, slots=True)
class SnoozeLock:
    """The lock a spike of an issue takes for its project's snooze duration."""

    project_id: int
    issue_id: str
    spike_id: str
    seconds: int

    @property
    def key(self) -> str:
        return snooze_key(self.project_id, self.issue_id)


async def acquire_snoozes(redis: Redis, locks: Sequence[SnoozeLock]) -> list[bool]:
    """Take every lock in one round trip, whatever their projects. For each: may its spike go out
    now? Yes if it got the lock, or if this same spike took it earlier and was never confirmed
    as published."""
    if not locks:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for lock in locks:
            pipe.set(lock.key, PENDING + lock.spike_id, nx=True, ex=lock.seconds)
            pipe.get(lock.key)
        replies = await pipe.execute()
    granted = []
    for index, lock in enumerate(locks):
        taken, holder = replies[2 * index], replies[2 * index + 1]
        if isinstance(holder, bytes):
            holder = holder.decode()
        granted.append(bool(taken) or holder == PENDING + lock.spike_id)
    return granted


async def confirm_snoozes(redis: Redis, locks: Sequence[SnoozeLock]) -> None:
    """Mark the locks of spikes the broker acknowledged (one round trip), keeping each lock's
    expiry; a lock that expired meanwhile stays gone."""
    if not locks:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for lock in locks:
            pipe.set(lock.key, PUBLISHED + lock.spike_id, xx=True, keepttl=True)
        await pipe.execute()


async def release_snooze(redis: Redis, lock: SnoozeLock) -> None:
    await redis.delete(lock.key)
