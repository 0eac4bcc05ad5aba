"""The Redis stage of the pipeline: every event that passed suppression counts towards its issue's
spike buckets, then events over a rate limit are finished as rate-limited.

One pipelined round trip per batch for all its projects (``redis_stage``). Fails open: while Redis
is unavailable every event goes on, uncounted and unlimited, and nothing is decided; it never
holds a batch back waiting for Redis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from worker import metrics
from worker.counting import CountedEvent, ProjectCounts
from worker.outcomes import Outcome
from worker.project_config import ProjectConfig
from worker.rate_limits import RateLimitOutcome
from worker.records import EventRecord, in_flight
from worker.redis_stage import ProjectBatch, RedisStage
from worker.spike_rule import ADAPTIVE

_OUTCOME_OF_LIMIT = {
    RateLimitOutcome.RATE_LIMITED_ISSUE: Outcome.RATE_LIMITED_ISSUE,
    RateLimitOutcome.RATE_LIMITED_PROJECT: Outcome.RATE_LIMITED_PROJECT,
}


class CountAndLimitStage:
    def __init__(self, redis_stage: RedisStage) -> None:
        self._redis_stage = redis_stage

    async def apply(
        self, batch: Sequence[EventRecord], configs: Mapping[int, ProjectConfig], now: float
    ) -> tuple[Sequence[EventRecord], dict[int, ProjectCounts]]:
        """Count and limit the batch at ``now`` (epoch seconds); return the counts of every
        project Redis answered for, to decide spikes on."""
        by_project: dict[int, list[EventRecord]] = defaultdict(list)
        for record in in_flight(batch):
            by_project[record.project_id].append(record)
        work: dict[int, ProjectBatch] = {
            project_id: (configs[project_id].rate_limits, [counted_event(r) for r in records])
            for project_id, records in by_project.items()
        }
        adaptive = {pid for pid in work if configs[pid].spike.detector == ADAPTIVE}
        result = await self._redis_stage.apply(work, now, adaptive)
        if result.redis_failed:
            metrics.REDIS_FAIL_OPEN.labels(stage="count_and_limit").inc()
        counts: dict[int, ProjectCounts] = {}
        for project_id, project in result.projects.items():
            for record, limit in zip(by_project[project_id], project.outcomes, strict=True):
                if limit in _OUTCOME_OF_LIMIT:
                    record.finish(_OUTCOME_OF_LIMIT[limit])
            if project.counts is not None:
                counts[project_id] = project.counts
        return batch, counts


def counted_event(record: EventRecord) -> CountedEvent:
    """The event as Redis needs it: its Kafka position for the watermark and its timestamp (epoch
    seconds) for the bucket."""
    if record.issue_id is None or record.timestamp is None:
        raise ValueError("only a decoded event with an issue can be counted")
    return CountedEvent(
        issue_id=str(record.issue_id),
        partition=record.source.partition,
        offset=record.source.offset,
        timestamp=record.timestamp.timestamp(),
    )
