"""counting.lua's ring (an adaptive project's per-issue history) on the real Redis, through
RedisStage, with exact numbers: the buckets it returns, exactly-once under redelivery, wrapping
round the day, its TTL, and its memory per issue within the budget of 2 KB."""

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


async def test_a_redelivered_batch_leaves_every_key_as_after_once(
    stage: RedisStage, project_id: int, snapshot
) -> None:
    feed = Feed(stage, project_id)
    await feed([("a", ago(30))], ago(30))
    batch = [("a", NOW), ("b", ago(1)), ("a", NOW), ("a", ago(2))]
    first = await feed(batch, NOW, offsets=[7, 8, 9, 10])
    after_once = await snapshot(project_id)

    again = await feed(batch, NOW, offsets=[7, 8, 9, 10])

    assert await snapshot(project_id) == after_once
    assert first == again
    assert again["a"] == IssueCounts("a", 2, history_with({30: 1, 2: 1}), observed_buckets=30)


async def test_a_partly_replayed_batch_counts_only_offsets_past_the_watermark(
    stage: RedisStage, project_id: int
) -> None:
    feed = Feed(stage, project_id)
    await feed([("a", NOW)] * 3, NOW, offsets=[10, 11, 12])

    issues = await feed([("a", NOW)] * 4, NOW, offsets=[11, 12, 13, 14])

    assert issues["a"].current == 5


async def test_a_mean_project_keeps_no_ring_and_an_adaptive_one_no_issue_counters(
    stage: RedisStage, redis: Redis, new_project_id
) -> None:
    mean, adaptive = new_project_id(), new_project_id()
    events = [CountedEvent("a", 0, 1, NOW)]

    await stage.apply(
        {mean: (RateLimits(), events), adaptive: (RateLimits(), events)}, NOW, {adaptive}
    )

    assert await redis.exists(f"{{p:{mean}}}:ring:i:a") == 0
    assert await redis.get(f"{{p:{mean}}}:cnt:i:a:{BUCKET_START}") == b"1"
    assert await redis.exists(f"{{p:{adaptive}}}:ring:i:a") == 1
    assert await redis.exists(f"{{p:{adaptive}}}:cnt:i:a:{BUCKET_START}") == 0
    # The project's own buckets serve both: a new issue falls back on them.
    assert await redis.get(f"{{p:{adaptive}}}:cnt:p:{BUCKET_START}") == b"1"


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


async def test_a_ring_expires_a_day_and_an_hour_after_its_last_write(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    await Feed(stage, project_id)([("a", NOW)], NOW)

    ttl = await redis.ttl(f"{{p:{project_id}}}:ring:i:a")

    assert (HISTORY + 1) * BUCKET - 5 <= ttl <= (HISTORY + 1) * BUCKET


async def test_a_ring_takes_at_most_2_kb_of_redis_memory(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    feed = Feed(stage, project_id)
    await feed([("a", NOW)] * 1000, NOW)

    used = await redis.memory_usage(f"{{p:{project_id}}}:ring:i:a")

    assert used is not None
    assert used <= MEMORY_BUDGET_BYTES


async def test_short_buckets_give_a_long_ring_that_still_skips_thousands_of_buckets_at_once(
    redis: Redis, project_id: int
) -> None:
    # 10-second buckets: a day is 8,640 of them, so coming back after 2,000 zeroes 2,000 words.
    stage = RedisStage(redis, topic=TOPIC, bucket_size_seconds=10, history_buckets=11)
    history = adaptive_history_buckets(10)
    feed = Feed(stage, project_id)
    await feed([("a", NOW - 20_000)] * 5, NOW - 20_000)

    issues = await feed([("a", NOW)], NOW)

    expected = [0] * history
    expected[history - 2000] = 5
    assert issues["a"] == IssueCounts("a", 1, expected, observed_buckets=2000)
