"""The spike stage: each issue a batch counted is judged by its project's spike rule, and each one
that spikes, unless snoozed, is stored (``spike_store``) and then published to the spike topic
keyed by its issue id, with the broker's acknowledgement awaited.

A spike that cannot be decided or published is logged and decided again by a later batch of its
issue (its snooze lock is released); it never holds back or loses the batch's events.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import msgspec

from schemas.events import SpikeEventMessage
from schemas.redis_client import RedisClient
from worker import metrics
from worker.counting import ProjectCounts
from worker.outcomes import Outcome
from worker.project_config import ProjectConfig
from worker.records import EventRecord
from worker.sinks import KafkaSink, OutgoingMessage
from worker.snooze import kafka_position
from worker.spike_events import BatchPositions, emit_spikes
from worker.spike_rule import find_spike_candidates
from worker.spike_store import SpikeStore

log = logging.getLogger(__name__)


class SpikeStage:
    def __init__(
        self, redis: RedisClient, store: SpikeStore, sink: KafkaSink, *, topic: str
    ) -> None:
        self._redis = redis
        self._store = store
        self._sink = sink
        self._topic = topic

    async def decide_and_emit(
        self,
        counts: Mapping[int, ProjectCounts],
        configs: Mapping[int, ProjectConfig],
        now: float,
        batch: Sequence[EventRecord],
    ) -> list[SpikeEventMessage]:
        """Emit the spikes of the counts of ``batch`` at ``now`` (epoch seconds); return them."""
        candidates = {
            project_id: spiking
            for project_id, project_counts in counts.items()
            if (spiking := find_spike_candidates(project_counts, configs[project_id].spike))
        }
        if not candidates:
            return []
        try:
            issues = await self._store.issues(
                {c.issue_id for spiking in candidates.values() for c in spiking}
            )
        # Nothing is snoozed yet, so the next batch that counts these issues decides again.
        except Exception:
            log.exception("could not read the issues of %d spiking projects", len(candidates))
            return []
        emissions = await emit_spikes(
            self._redis,
            candidates,
            issues,
            {project_id: configs[project_id].spike for project_id in candidates},
            now,
            self._publish,
            batch_positions(batch),
        )
        metrics.SPIKES_SNOOZED.inc(len(emissions.snoozed))
        return emissions.published

    async def _publish(self, spike: SpikeEventMessage) -> None:
        # Stored first: whoever hears of the spike on the topic can read it back from the API.
        await self._store.save(spike)
        value = msgspec.json.encode(spike)
        await self._sink.deliver([OutgoingMessage(self._topic, spike.issue.id.encode(), value)])
        metrics.SPIKES_EMITTED.inc()


# Outcomes of events that were never counted: they cannot stand for their issue in a claim.
_UNCOUNTED = frozenset({Outcome.SUPPRESSED, Outcome.DEAD_LETTERED})


def batch_positions(batch: Sequence[EventRecord]) -> BatchPositions:
    """The batch's positions, each issue claimed by its first counted event."""
    claims: dict[str, str] = {}
    events = []
    for record in batch:
        position = kafka_position(record.source.partition, record.source.offset)
        events.append(position)
        if record.issue_id is not None and record.outcome not in _UNCOUNTED:
            claims.setdefault(str(record.issue_id), position)
    return BatchPositions(frozenset(events), claims)
