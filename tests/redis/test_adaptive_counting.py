"""counting.lua's ring (an adaptive project's per-issue history) on the real Redis, through
RedisStage, with exact numbers: the buckets it returns, exactly-once under redelivery, wrapping
round the day, and its memory per issue within the budget of 2 KB."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from worker.counting import CountedEvent, IssueCounts
from worker.rate_limits import RateLimits
from worker.redis_stage import RedisStage
from worker.spike_rule import adaptive_history_buckets

pytestmark = pytest.mark.redis

TOPIC = "exception_events"
BUCKET = 300
BUCKET_START = 1_800_000_000  # a multiple of 300
NOW = BUCKET_START + 10.0
HISTORY = adaptive_history_buckets(BUCKET)  # 299: a day and an hour
MEMORY_BUDGET_BYTES = 2048


@pytest.fixture
def stage(redis: Redis) -> RedisStage:
    return RedisStage(redis, topic=TOPIC, bucket_size_seconds=BUCKET, history_buckets=11)


class Feed:
    def __init__(self, stage: RedisStage, project_id: int) -> None:
        self.stage = stage
        self.project_id = project_id
        self.offset = 0

    async def __call__(
        self, events: list[tuple[str, float]], now: float, *, offsets: list[int] | None = None
    ) -> dict[str, IssueCounts]:
        """Count (issue, timestamp) events at ``now``; fresh offsets unless ``offsets``."""
        if offsets is None:
            offsets = list(range(self.offset + 1, self.offset + 1 + len(events)))
            self.offset += len(events)
        batch = [CountedEvent(i, 0, o, t) for (i, t), o in zip(events, offsets, strict=True)]
        result = await self.stage.apply(
            {self.project_id: (RateLimits(), batch)}, now, {self.project_id}
        )
        counts = result.projects[self.project_id].counts
        assert counts is not None
        return counts.issues


def ago(buckets: int) -> float:
    return NOW - buckets * BUCKET


def history_with(values: dict[int, int]) -> list[int]:
    """The history (oldest first) with ``values`` by buckets back from the current one."""
    history = [0] * HISTORY
    for back, value in values.items():
        history[HISTORY - back] = value
    return history


async def test_a_new_issue_has_its_first_bucket_and_nothing_observed_before(
    stage: RedisStage, project_id: int
) -> None:
    feed = Feed(stage, project_id)

    issues = await feed([("a", NOW), ("a", NOW), ("b", NOW)], NOW)

    assert issues["a"] == IssueCounts("a", 2, [0] * HISTORY, observed_buckets=0)
    assert issues["b"] == IssueCounts("b", 1, [0] * HISTORY, observed_buckets=0)


async def test_buckets_come_back_oldest_first_with_the_buckets_observed(
    stage: RedisStage, project_id: int
) -> None:
    feed = Feed(stage, project_id)
    await feed([("a", ago(5))] * 3, ago(5))
    await feed([("a", ago(2))] * 4, ago(2))
    # A late event counts in its own past bucket.
    await feed([("a", ago(3))], ago(2))

    issues = await feed([("a", NOW)] * 7, NOW)

    assert issues["a"] == IssueCounts("a", 7, history_with({5: 3, 3: 1, 2: 4}), observed_buckets=5)


async def test_a_redelivered_batch_counts_once(stage: RedisStage, project_id: int) -> None:
    feed = Feed(stage, project_id)
    first = await feed([("a", NOW)] * 3, NOW)

    again = await feed([("a", NOW)] * 3, NOW, offsets=[1, 2, 3])

    assert first == again
    assert again["a"].current == 3


async def test_a_day_later_the_ring_holds_the_last_day_and_an_hour_only(
    stage: RedisStage, project_id: int
) -> None:
    feed = Feed(stage, project_id)
    start = NOW - (HISTORY + 3) * BUCKET
    # One event every hour for a day and more: bucket 0, 12, 24, ... of the trace.
    for hour in range(0, HISTORY + 3, 12):
        await feed([("a", start + hour * BUCKET)], start + hour * BUCKET)

    issues = await feed([("a", NOW)], NOW)

    expected = {HISTORY + 3 - hour: 1 for hour in range(0, HISTORY + 3, 12) if hour > 3}
    assert issues["a"] == IssueCounts("a", 1, history_with(expected), observed_buckets=HISTORY)


async def test_an_issue_quiet_for_a_while_reads_zeros_for_the_buckets_it_missed(
    stage: RedisStage, project_id: int
) -> None:
    feed = Feed(stage, project_id)
    await feed([("a", ago(40))] * 9, ago(40))

    issues = await feed([("a", NOW)], NOW)

    assert issues["a"] == IssueCounts("a", 1, history_with({40: 9}), observed_buckets=40)


async def test_a_ring_takes_at_most_2_kb_of_redis_memory(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    feed = Feed(stage, project_id)
    await feed([("a", NOW)] * 1000, NOW)

    used = await redis.memory_usage(f"{{p:{project_id}}}:ring:i:a")

    assert used is not None
    assert used <= MEMORY_BUDGET_BYTES
