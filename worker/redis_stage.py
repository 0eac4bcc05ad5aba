"""The Redis stages of a batch: spike counting, then rate limits, in one pipelined round trip.

Owns the round trip (each project's two script calls, all projects in one non-transactional
pipeline) and failing open when Redis is unavailable. It never decides spikes and never forwards
events: it returns, per project, one rate-limit outcome per event and the counts for the decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from worker.counting import COUNTING_LUA, CountedEvent, CountingCall, ProjectCounts
from worker.rate_limits import RATE_LIMITS_LUA, RateLimitCall, RateLimitOutcome, RateLimits

logger = logging.getLogger(__name__)

REDIS_FAIL_OPEN_EVENTS = Counter(
    "spikewatch_redis_fail_open_events",
    "Events let through without spike counting or rate limits because Redis failed",
)

ProjectBatch = tuple[RateLimits, Sequence[CountedEvent]]


@dataclass(frozen=True, slots=True)
class ProjectResult:
    outcomes: list[RateLimitOutcome]  # one per input event, in input order
    counts: ProjectCounts | None  # None when Redis failed: there is nothing to decide on


@dataclass(frozen=True, slots=True)
class BatchResult:
    projects: dict[int, ProjectResult]
    redis_failed: bool


class RedisStage:
    """Counts and rate-limits a batch, one atomic script call per project and script.

    Counting and rate limiting are two scripts so that each one reads as one job; each keeps its
    own per-partition watermark, so each is exactly-once on its own whatever a crash interrupts.
    Both go in the same pipeline: one round trip per batch (three after Redis lost its scripts).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        topic: str,
        bucket_size_seconds: int = 300,
        history_buckets: int = 11,
        failure_log_interval_seconds: float = 60.0,
    ) -> None:
        self._redis = redis
        self._counting_script = redis.register_script(COUNTING_LUA)
        self._rate_limit_script = redis.register_script(RATE_LIMITS_LUA)
        self._counting = CountingCall(
            topic=topic,
            bucket_size_seconds=bucket_size_seconds,
            history_buckets=history_buckets,
        )
        self._rate_limits = RateLimitCall(topic=topic)
        self._failure_log_interval_seconds = failure_log_interval_seconds
        self._last_failure_log: float | None = None
        self._events_failed_open_since_log = 0

    async def apply(self, batch: Mapping[int, ProjectBatch], now: float) -> BatchResult:
        """Count and rate-limit every project's events; ``now`` is epoch seconds."""
        work = {project_id: job for project_id, job in batch.items() if job[1]}
        if not work:
            return BatchResult(projects={}, redis_failed=False)
        try:
            replies = await self._execute(work, now)
        except (RedisError, OSError) as exc:
            replies = [exc] * (2 * len(work))

        projects: dict[int, ProjectResult] = {}
        failure: Exception | None = None
        failed_events = 0
        for index, (project_id, (_, events)) in enumerate(work.items()):
            counting_reply, rate_limit_reply = replies[2 * index : 2 * index + 2]
            projects[project_id] = ProjectResult(
                outcomes=_outcomes_or_admit_all(rate_limit_reply, len(events)),
                counts=_counts_or_none(counting_reply),
            )
            errors = [r for r in (counting_reply, rate_limit_reply) if isinstance(r, Exception)]
            if errors:
                failure = errors[0]
                failed_events += len(events)

        if failure is None:
            self._note_recovery()
        else:
            self._note_failure(failure, failed_events)
        return BatchResult(projects=projects, redis_failed=failure is not None)

    async def _execute(self, work: Mapping[int, ProjectBatch], now: float) -> list[Any]:
        replies = await self._send(work, now)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # Redis restarted or flushed its scripts. Sending the whole batch again is safe: the
            # watermarks turn whatever already ran into a replay with the same outcome.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.script_load(self._counting_script.script)
                pipe.script_load(self._rate_limit_script.script)
                await pipe.execute()
            replies = await self._send(work, now)
        return replies

    async def _send(self, work: Mapping[int, ProjectBatch], now: float) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for project_id, (limits, events) in work.items():
                self._counting.queue(pipe, self._counting_script.sha, project_id, events, now)
                self._rate_limits.queue(
                    pipe, self._rate_limit_script.sha, project_id, limits, events, now
                )
            return await pipe.execute(raise_on_error=False)

    def _note_failure(self, error: Exception, failed_events: int) -> None:
        # Failing open keeps events flowing during a Redis outage; a limit or a spike missed for
        # a few minutes costs less than stalling ingestion. Logging is throttled so an outage
        # does not flood the log with one line per batch.
        REDIS_FAIL_OPEN_EVENTS.inc(failed_events)
        self._events_failed_open_since_log += failed_events
        clock = time.monotonic()
        if (
            self._last_failure_log is None
            or clock - self._last_failure_log >= self._failure_log_interval_seconds
        ):
            logger.warning(
                "Redis failed (%s); let %d events through without counting or rate limits",
                error,
                self._events_failed_open_since_log,
            )
            self._last_failure_log = clock
            self._events_failed_open_since_log = 0

    def _note_recovery(self) -> None:
        if self._last_failure_log is not None:
            logger.info(
                "Redis is back; counting and rate limits resume (%d more events went through "
                "unchecked since the last warning)",
                self._events_failed_open_since_log,
            )
            self._last_failure_log = None
            self._events_failed_open_since_log = 0


def _outcomes_or_admit_all(reply: Any, events: int) -> list[RateLimitOutcome]:
    if isinstance(reply, Exception):
        return [RateLimitOutcome.ADMITTED] * events
    return RateLimitCall.parse(reply)


def _counts_or_none(reply: Any) -> ProjectCounts | None:
    return None if isinstance(reply, Exception) else CountingCall.parse(reply)
