"""The Redis stages of a batch: spike counting, then rate limits, in one pipelined round trip
per Redis node.

Owns the round trips (one script call per project doing both; the projects of one node in one
non-transactional pipeline, the nodes concurrently) and failing open, project by project, when
the node of a project is unavailable. It never decides spikes and never forwards events: it
returns, per project, one rate-limit outcome per event and the counts for the decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from prometheus_client import Counter
from redis.exceptions import NoScriptError

from schemas.redis_client import RedisClient
from schemas.redis_keys import project_tag
from worker.counting import (
    COUNTING_LUA,
    CountedEvent,
    CountingCall,
    ProjectCounts,
    partition_slots,
)
from worker.rate_limits import RATE_LIMITS_LUA, RateLimitCall, RateLimitOutcome, RateLimits
from worker.redis_nodes import AnyPipeline, CallResult, pipelined_by_node
from worker.spike_rule import adaptive_history_buckets

logger = logging.getLogger(__name__)


def _as_function(name: str, script: str) -> str:
    # A script's KEYS and ARGV become the function's parameters, so its body runs unchanged.
    return f"local function {name}(KEYS, ARGV)\n{script}\nend\n"


# counting.lua and rate_limits.lua, each kept whole in its own file with its own contract, run as
# functions of one script: a batch costs one call per project instead of two.
COUNT_AND_LIMIT_LUA = (
    _as_function("count_events", COUNTING_LUA)
    + _as_function("charge_rate_limits", RATE_LIMITS_LUA)
    + files("worker").joinpath("count_and_limit.lua").read_text(encoding="utf-8")
)

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
    """Counts and rate-limits a batch, one atomic script call per project.

    Counting and rate limiting are two scripts so that each one reads as one job; each keeps its
    own per-partition watermark, so each is exactly-once on its own. They run as one script call
    per project, the projects of each node in one pipeline: one round trip per node a batch
    touches (two after the node lost its scripts).
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        topic: str,
        bucket_size_seconds: int = 300,
        history_buckets: int = 11,
        failure_log_interval_seconds: float = 60.0,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(COUNT_AND_LIMIT_LUA)
        self._counting = CountingCall(
            topic=topic,
            bucket_size_seconds=bucket_size_seconds,
            history_buckets=history_buckets,
        )
        self._rate_limits = RateLimitCall(topic=topic)
        # An adaptive project's issues keep their history in a ring: the current bucket and the
        # history the adaptive detector reads.
        self._ring_buckets = adaptive_history_buckets(bucket_size_seconds) + 1
        self._failure_log_interval_seconds = failure_log_interval_seconds
        self._last_failure_log: float | None = None
        self._events_failed_open_since_log = 0

    async def apply(
        self,
        batch: Mapping[int, ProjectBatch],
        now: float,
        adaptive: Collection[int] = frozenset(),
    ) -> BatchResult:
        """Count and rate-limit every project's events; ``now`` is epoch seconds. The projects
        of ``adaptive`` use the adaptive detector: their issues' counts come from rings."""
        work = {project_id: job for project_id, job in batch.items() if job[1]}
        if not work:
            return BatchResult(projects={}, redis_failed=False)
        rings = {
            project_id: self._ring_buckets if project_id in adaptive else 0 for project_id in work
        }
        replies = await self._execute(work, now, rings)

        projects: dict[int, ProjectResult] = {}
        failure: Exception | None = None
        failed_events = 0
        for (project_id, (_, events)), reply in zip(work.items(), replies, strict=True):
            if isinstance(reply, Exception):
                failure = reply
                failed_events += len(events)
                projects[project_id] = ProjectResult(
                    outcomes=[RateLimitOutcome.ADMITTED] * len(events), counts=None
                )
                continue
            counting_reply, rate_limit_reply = reply
            projects[project_id] = ProjectResult(
                outcomes=RateLimitCall.parse(rate_limit_reply),
                counts=self._counting.parse(counting_reply, rings[project_id]),
            )

        if failure is None:
            self._note_recovery()
        else:
            self._note_failure(failure, failed_events)
        return BatchResult(projects=projects, redis_failed=failure is not None)

    async def _execute(
        self, work: Mapping[int, ProjectBatch], now: float, rings: Mapping[int, int]
    ) -> list[Any]:
        """Per project, the script's reply or the error that failed it."""
        project_ids = list(work)
        replies = _first_replies(await self._send(work, project_ids, now, rings, load=False))
        lost = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            # A node restarted, failed over or flushed its scripts. Sending those projects again
            # is safe: the watermarks turn whatever already ran into a replay with the same
            # outcome.
            again = [project_ids[index] for index in lost]
            resent = _first_replies(await self._send(work, again, now, rings, load=True))
            for index, reply in zip(lost, resent, strict=True):
                replies[index] = reply
        return replies

    async def _send(
        self,
        work: Mapping[int, ProjectBatch],
        project_ids: Sequence[int],
        now: float,
        rings: Mapping[int, int],
        *,
        load: bool,
    ) -> list[CallResult]:
        def queue(pipe: AnyPipeline, index: int) -> None:
            project_id = project_ids[index]
            limits, events = work[project_id]
            slots = partition_slots(events)
            counting_keys = self._counting.keys(project_id, slots)
            keys = counting_keys + self._rate_limits.keys(project_id, slots)
            args: list[str | int] = [
                len(counting_keys),
                *self._counting.fixed_args(project_id, now, rings[project_id]),
                *self._rate_limits.fixed_args(project_id, limits, now),
            ]
            for event in events:
                args += (
                    slots[event.partition],
                    event.offset,
                    event.issue_id,
                    repr(event.timestamp),
                )
            if load and len(pipe) == 0:
                # The first call on a node's connection sends the script itself, which caches it
                # there for the calls queued after it: no separate SCRIPT LOAD to route.
                pipe.eval(self._script.script, len(keys), *keys, *args)
            else:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)

        keys = [project_tag(project_id) for project_id in project_ids]
        return await pipelined_by_node(self._redis, keys, queue)

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


def _first_replies(results: Sequence[CallResult]) -> list[Any]:
    """Each call's one reply (a project's call is one command), or its node's error."""
    return [result if isinstance(result, Exception) else result[0] for result in results]
