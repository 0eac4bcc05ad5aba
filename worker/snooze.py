"""Snooze: after a spike, an issue raises no new spike until its lock expires.

Owns the per-issue lock ``{p:<project>}:snooze:<issue>`` (``SET NX EX``, so the first worker
to take it wins and Redis forgets it on time). It never decides spikes and never publishes.

The lock's value says which spike took it, from which batch, and whether it is known to be out:
``pending:<spike id>@<claim>`` from the moment it is taken, ``published:<spike id>`` once the
broker acknowledged the spike. The claim is the Kafka position (``partition:offset``) of one of the
issue's events in the batch that took the lock. A worker that dies in between leaves a pending
lock behind, and its batch is redelivered uncommitted; the redelivered batch that holds the
claimed position publishes the spike (again, perhaps: same id, so whoever listens can deduplicate)
rather than losing it for the whole snooze. Any other batch, such as another worker's seeing the
same issue cross at the same time, finds the issue snoozed.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

from schemas.redis_client import RedisClient
from schemas.redis_keys import project_tag
from worker.redis_nodes import AnyPipeline, pipelined_by_node

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
    # The position (``partition:offset``) of an event of the issue in the batch taking the lock.
    claim: str

    @property
    def key(self) -> str:
        return snooze_key(self.project_id, self.issue_id)

    @property
    def pending(self) -> str:
        return f"{PENDING}{self.spike_id}@{self.claim}"

    def is_redelivery(self, holder: str, positions: Container[str]) -> bool:
        """Does a lock held as ``holder`` wait for this spike from a batch whose events are
        (some of) ``positions``? Then the batch that took it was never committed."""
        spike, _, claim = holder.partition("@")
        return spike == PENDING + self.spike_id and claim in positions


def kafka_position(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


async def acquire_snoozes(
    redis: RedisClient, locks: Sequence[SnoozeLock], positions: Container[str]
) -> list[bool | None]:
    """Take every lock, whatever their projects, in one round trip per Redis node, for a batch of
    the events at ``positions`` (``kafka_position``). For each: may its spike go out now? Yes if
    it got the lock, or if this same spike took it from a batch this one redelivers and was never
    confirmed as published; None if its node failed, so nobody knows."""

    def queue(pipe: AnyPipeline, index: int) -> None:
        lock = locks[index]
        pipe.set(lock.key, lock.pending, nx=True, ex=lock.seconds)
        pipe.get(lock.key)

    results = await pipelined_by_node(redis, [lock.key for lock in locks], queue)
    granted: list[bool | None] = []
    for lock, result in zip(locks, results, strict=True):
        if isinstance(result, Exception) or any(isinstance(r, Exception) for r in result):
            granted.append(None)
            continue
        taken, holder = result
        if isinstance(holder, bytes):
            holder = holder.decode()
        granted.append(
            bool(taken) or (isinstance(holder, str) and lock.is_redelivery(holder, positions))
        )
    return granted


async def confirm_snoozes(redis: RedisClient, locks: Sequence[SnoozeLock]) -> int:
    """Mark the locks of spikes the broker acknowledged (one round trip per node), keeping each
    lock's expiry; a lock that expired meanwhile stays gone. The number that could not be marked
    because their node failed."""

    def queue(pipe: AnyPipeline, index: int) -> None:
        lock = locks[index]
        pipe.set(lock.key, PUBLISHED + lock.spike_id, xx=True, keepttl=True)

    results = await pipelined_by_node(redis, [lock.key for lock in locks], queue)
    return sum(
        isinstance(result, Exception) or isinstance(result[0], Exception) for result in results
    )


async def release_snooze(redis: RedisClient, lock: SnoozeLock) -> None:
    await redis.delete(lock.key)
