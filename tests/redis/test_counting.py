"""counting.lua on the real Redis, driven through RedisStage, with exact numbers."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from worker.counting import CountedEvent, ProjectCounts
from worker.rate_limits import RateLimitOutcome, RateLimits
from worker.redis_stage import RedisStage

pytestmark = pytest.mark.redis

TOPIC = "exception_events"
BUCKET = 300
BUCKET_START = 1_800_000_000  # a multiple of 300
NOW = BUCKET_START + 10.0
ZEROS = [0] * 11


def at(issue_id: str, offset: int, timestamp: float, partition: int = 0) -> CountedEvent:
    return CountedEvent(issue_id, partition, offset, timestamp)


async def count(
    stage: RedisStage, project_id: int, batch: list[CountedEvent], now: float = NOW
) -> ProjectCounts:
    result = await stage.apply({project_id: (RateLimits(), batch)}, now)
    counts = result.projects[project_id].counts
    assert counts is not None
    return counts


@pytest.fixture
def stage(redis: Redis) -> RedisStage:
    return RedisStage(redis, topic=TOPIC, bucket_size_seconds=BUCKET, history_buckets=11)


async def test_each_event_counts_in_its_issue_its_project_and_the_bucket_issue_set(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    batch = [at("a", 1, NOW), at("a", 2, NOW), at("b", 3, NOW), at("a", 4, NOW), at("b", 5, NOW)]
    tag = f"{{p:{project_id}}}"

    counts = await count(stage, project_id, batch)

    assert await redis.get(f"{tag}:cnt:i:a:{BUCKET_START}") == b"3"
    assert await redis.get(f"{tag}:cnt:i:b:{BUCKET_START}") == b"2"
    assert await redis.get(f"{tag}:cnt:p:{BUCKET_START}") == b"5"
    assert await redis.smembers(f"{tag}:issues:{BUCKET_START}") == {b"a", b"b"}
    assert counts.bucket_start == BUCKET_START
    assert {i: (c.current, c.history) for i, c in counts.issues.items()} == {
        "a": (3, ZEROS),
        "b": (2, ZEROS),
    }


async def test_rate_limited_events_still_count_towards_spikes(
    stage: RedisStage, project_id: int
) -> None:
    limits = RateLimits(issue_value=1, issue_bucket_minutes=1)
    batch = [at("a", n, NOW) for n in range(4)]

    result = await stage.apply({project_id: (limits, batch)}, NOW)

    project = result.projects[project_id]
    assert project.outcomes.count(RateLimitOutcome.RATE_LIMITED_ISSUE) == 3
    assert project.counts is not None
    assert project.counts.issues["a"].current == 4


async def test_history_comes_back_oldest_first_for_issues_and_project(
    stage: RedisStage, project_id: int
) -> None:
    # Bucket k back from the current one: issue a has k events there, issue b one (k = 3, 7).
    offset = 0
    for back in (3, 7):
        then = NOW - back * BUCKET
        batch = [at("a", offset + n, then) for n in range(back)] + [at("b", offset + back, then)]
        offset += back + 1
        await count(stage, project_id, batch, then)

    counts = await count(stage, project_id, [at("a", offset, NOW)])

    # history[10] is one bucket back, history[0] eleven back.
    assert counts.issues["a"].current == 1
    assert counts.issues["a"].history == [0, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0]
    assert counts.history_totals == [0, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0]
    assert counts.history_issue_counts == [0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0]


async def test_bucket_rollover_moves_the_current_bucket_into_history(
    stage: RedisStage, project_id: int
) -> None:
    before = await count(stage, project_id, [at("a", n, NOW) for n in range(3)])

    after = await count(stage, project_id, [at("a", 3, NOW + BUCKET)], NOW + BUCKET)

    assert (before.bucket_start, before.issues["a"].current) == (BUCKET_START, 3)
    assert after.bucket_start == BUCKET_START + BUCKET
    assert after.issues["a"].current == 1
    assert after.issues["a"].history == [0] * 10 + [3]
    assert after.history_totals == [0] * 10 + [3]


async def test_late_event_counts_in_its_own_past_bucket(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    counts = await count(stage, project_id, [at("a", 1, NOW - 2 * BUCKET)])

    assert counts.issues["a"].current == 0
    assert counts.issues["a"].history == [0] * 9 + [1, 0]
    assert await redis.get(f"{{p:{project_id}}}:cnt:p:{BUCKET_START - 2 * BUCKET}") == b"1"


async def test_event_older_than_the_history_window_counts_in_the_oldest_bucket(
    stage: RedisStage, project_id: int
) -> None:
    counts = await count(stage, project_id, [at("a", 1, NOW - 86_400)])

    assert counts.issues["a"].history == [1] + [0] * 10
    assert counts.history_totals == [1] + [0] * 10


async def test_future_dated_event_counts_in_the_current_bucket(
    stage: RedisStage, project_id: int
) -> None:
    counts = await count(stage, project_id, [at("a", 1, NOW + 86_400)])

    assert counts.issues["a"].current == 1
    assert counts.issues["a"].history == ZEROS


async def test_bucket_keys_expire_just_past_the_history_window(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    tag = f"{{p:{project_id}}}"
    await count(stage, project_id, [at("a", 1, NOW), at("a", 2, NOW - 11 * BUCKET)])

    # The current bucket leaves the window 12 buckets after it started; now is 10 s into it;
    # 60 s of slack. The oldest bucket leaves it one bucket from now.
    current_ttls = [
        await redis.ttl(f"{tag}:cnt:i:a:{BUCKET_START}"),
        await redis.ttl(f"{tag}:cnt:p:{BUCKET_START}"),
        await redis.ttl(f"{tag}:issues:{BUCKET_START}"),
    ]
    oldest_ttl = await redis.ttl(f"{tag}:cnt:p:{BUCKET_START - 11 * BUCKET}")
    for ttl in current_ttls:
        assert 12 * BUCKET - 10 + 60 - 1 <= ttl <= 12 * BUCKET - 10 + 60
    assert BUCKET - 10 + 60 - 1 <= oldest_ttl <= BUCKET - 10 + 60


async def test_same_batch_applied_twice_leaves_every_bucket_as_after_once(
    stage: RedisStage, project_id: int, snapshot
) -> None:
    batch = [at("a", 7, NOW), at("b", 8, NOW - BUCKET), at("a", 9, NOW), at("c", 3, NOW, 1)]
    first = await count(stage, project_id, batch)
    after_once = await snapshot(project_id)

    second = await count(stage, project_id, batch)

    assert await snapshot(project_id) == after_once
    assert second == first
    assert first.issues["a"].current == 2


async def test_partly_replayed_batch_counts_only_offsets_past_the_watermark(
    stage: RedisStage, project_id: int
) -> None:
    await count(stage, project_id, [at("a", n, NOW) for n in (10, 11, 12)])

    counts = await count(stage, project_id, [at("a", n, NOW) for n in (11, 12, 13, 14)])

    assert counts.issues["a"].current == 5


async def test_projects_in_one_batch_count_separately(stage: RedisStage, new_project_id) -> None:
    first, second = new_project_id(), new_project_id()

    result = await stage.apply(
        {
            first: (RateLimits(), [at("a", 1, NOW), at("a", 2, NOW)]),
            second: (RateLimits(), [at("a", 1, NOW)]),
        },
        NOW,
    )

    currents = {
        project_id: project.counts.issues["a"].current
        for project_id, project in result.projects.items()
        if project.counts is not None
    }
    assert currents == {first: 2, second: 1}
