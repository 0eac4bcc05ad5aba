"""Spike events: turn the rule's candidates into messages, under each issue's snooze lock.

Owns the deterministic spike id, the message shape and the order snooze -> publish -> confirm (or
release on failure). It never decides spikes (``spike_rule``) and never writes the database or
Kafka itself: the caller's ``publish`` does both, so this module stays testable on Redis alone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.events import SpikeEventMessage, SpikeIssue
from schemas.redis_client import REDIS_UNAVAILABLE, RedisClient
from worker.snooze import SnoozeLock, acquire_snoozes, confirm_snoozes, release_snooze
from worker.spike_rule import SpikeCandidate, SpikeConfig

logger = logging.getLogger(__name__)

# The claim of a candidate whose issue has no counted event in the batch: no batch holds it.
NO_CLAIM = "-"

SPIKE_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "spikewatch:error_tracking_spike_events")

PublishSpike = Callable[[SpikeEventMessage], Awaitable[None]]


def spike_event_id(issue_id: str, bucket_start: int) -> uuid.UUID:
    """The same (issue, bucket) always gives the same id, so a retried spike is deduplicated."""
    return uuid.uuid5(SPIKE_EVENT_NAMESPACE, f"{issue_id}:{bucket_start}")


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat()


def build_spike_event(
    project_id: int,
    issue: SpikeIssue,
    candidate: SpikeCandidate,
    config: SpikeConfig,
    detected_at: float,
) -> SpikeEventMessage:
    return SpikeEventMessage(
        id=str(spike_event_id(candidate.issue_id, candidate.bucket_start)),
        project_id=project_id,
        issue=issue,
        detected_at=_iso(detected_at),
        computed_baseline=candidate.baseline,
        current_bucket_value=candidate.current,
        bucket_start=_iso(candidate.bucket_start),
        threshold=config.threshold,
        multiplier=config.multiplier,
    )


@dataclass(frozen=True, slots=True)
class BatchPositions:
    """Where the events of the batch deciding the spikes sit in the input topic, as
    ``snooze.kafka_position`` writes them: what a snooze lock's claim names and is checked in."""

    # Every event of the batch.
    events: frozenset[str]
    # Issue id -> the position of one of the issue's counted events in the batch.
    claims: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SpikeEmissions:
    published: list[SpikeEventMessage] = field(default_factory=list)
    # ``publish`` raised for these; their snooze was released so a later batch can retry.
    failed: list[SpikeEventMessage] = field(default_factory=list)
    # Issues of candidates skipped because their snooze lock was already held.
    snoozed: list[str] = field(default_factory=list)


async def emit_spikes(
    redis: RedisClient,
    candidates: Mapping[int, Sequence[SpikeCandidate]],
    issues: Mapping[str, SpikeIssue],
    configs: Mapping[int, SpikeConfig],
    now: float,
    publish: PublishSpike,
    positions: BatchPositions,
) -> SpikeEmissions:
    """Publish a spike event for every candidate (by project) whose issue is not snoozed,
    snoozing it; the locks of all projects are taken in one round trip per Redis node and
    confirmed in another.

    ``issues`` gives each issue's name and description; an issue missing from it is published
    with its id only. ``now`` (epoch seconds) becomes ``detected_at``. ``positions`` are the
    batch's: a lock that a batch it redelivers took, but whose spike was never confirmed as
    published, lets the spike out again (``snooze``).
    """
    emissions = SpikeEmissions()
    planned: dict[tuple[int, str], tuple[SpikeEventMessage, SnoozeLock]] = {}
    for project_id, spiking in candidates.items():
        config = configs[project_id]
        for candidate in spiking:
            if (project_id, candidate.issue_id) in planned:
                continue
            issue = issues.get(candidate.issue_id) or SpikeIssue(candidate.issue_id, None, None)
            event = build_spike_event(project_id, issue, candidate, config, now)
            claim = positions.claims.get(candidate.issue_id, NO_CLAIM)
            lock = SnoozeLock(
                project_id, candidate.issue_id, event.id, config.snooze_seconds, claim
            )
            planned[project_id, candidate.issue_id] = (event, lock)
    if not planned:
        return emissions
    granted = await acquire_snoozes(redis, [lock for _, lock in planned.values()], positions.events)
    unknown = granted.count(None)
    if unknown:
        # Without the lock a spike could be published by every batch; skipping is safe because
        # the next batch decides again on the same counts.
        logger.warning("Could not take the snooze locks of %d spikes; they wait", unknown)

    published: list[SnoozeLock] = []
    for (event, lock), go in zip(planned.values(), granted, strict=True):
        if go is None:
            continue
        if not go:
            emissions.snoozed.append(lock.issue_id)
            continue
        try:
            await publish(event)
        except Exception:
            logger.exception("Publishing spike %s of issue %s failed", event.id, lock.issue_id)
            await _release(redis, lock)
            emissions.failed.append(event)
        else:
            emissions.published.append(event)
            published.append(lock)
    await _confirm(redis, published)
    return emissions


async def _confirm(redis: RedisClient, locks: list[SnoozeLock]) -> None:
    if unmarked := await confirm_snoozes(redis, locks):
        # The locks stay pending: a redelivery of this batch would publish these spikes again,
        # under the same ids. Their snooze holds either way.
        logger.warning("Could not mark %d published spikes in Redis", unmarked)


async def _release(redis: RedisClient, lock: SnoozeLock) -> None:
    try:
        await release_snooze(redis, lock)
    except REDIS_UNAVAILABLE:
        logger.warning(
            "Could not release the snooze of issue %s; it expires on its own", lock.issue_id
        )
