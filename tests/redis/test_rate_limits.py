"""rate_limits.lua on the real Redis, driven through RedisStage, with exact numbers."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from worker.counting import CountedEvent
from worker.rate_limits import RateLimitOutcome, RateLimits
from worker.redis_stage import RedisStage

pytestmark = pytest.mark.redis

TOPIC = "exception_events"
NOW = 1_800_000_010.0

A = RateLimitOutcome.ADMITTED
I = RateLimitOutcome.RATE_LIMITED_ISSUE  # noqa: E741
P = RateLimitOutcome.RATE_LIMITED_PROJECT


def events(issue_id: str, offsets: range | list[int], partition: int = 0) -> list[CountedEvent]:
    return [CountedEvent(issue_id, partition, offset, NOW) for offset in offsets]


async def outcomes(
    stage: RedisStage,
    project_id: int,
    limits: RateLimits,
    batch: list[CountedEvent],
    now: float = NOW,
) -> list[RateLimitOutcome]:
    result = await stage.apply({project_id: (limits, batch)}, now)
    assert not result.redis_failed
    return result.projects[project_id].outcomes


@pytest.fixture
def stage(redis: Redis) -> RedisStage:
    return RedisStage(redis, topic=TOPIC)


async def test_fresh_issue_bucket_admits_exactly_its_capacity(
    stage: RedisStage, project_id: int
) -> None:
    limits = RateLimits(issue_value=5, issue_bucket_minutes=1)

    assert await outcomes(stage, project_id, limits, events("a", range(8))) == [A] * 5 + [I] * 3


async def test_fresh_project_bucket_admits_exactly_its_capacity(
    stage: RedisStage, project_id: int
) -> None:
    limits = RateLimits(project_value=4, project_bucket_minutes=1)
    batch = [CountedEvent(f"issue-{n % 3}", 0, n, NOW) for n in range(6)]

    assert await outcomes(stage, project_id, limits, batch) == [A] * 4 + [P] * 2


async def test_refill_is_proportional_to_elapsed_time(stage: RedisStage, project_id: int) -> None:
    limits = RateLimits(issue_value=30, issue_bucket_minutes=1)  # 0.5 tokens a second
    await outcomes(stage, project_id, limits, events("a", range(30)))

    after_ten_seconds = await outcomes(
        stage, project_id, limits, events("a", range(30, 38)), NOW + 10
    )
    same_instant = await outcomes(stage, project_id, limits, events("a", range(38, 40)), NOW + 10)

    assert after_ten_seconds == [A] * 5 + [I] * 3
    assert same_instant == [I, I]


async def test_fractional_tokens_carry_over_while_admits_are_whole(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    limits = RateLimits(issue_value=30, issue_bucket_minutes=1)  # 0.5 tokens a second
    await outcomes(stage, project_id, limits, events("a", range(30)))

    after_three_seconds = await outcomes(
        stage, project_id, limits, events("a", range(30, 33)), NOW + 3
    )
    tokens_left = await redis.hget(f"{{p:{project_id}}}:tb:i:a", "tokens")
    one_second_later = await outcomes(
        stage, project_id, limits, events("a", range(33, 36)), NOW + 4
    )

    assert after_three_seconds == [A, I, I]
    assert float(tokens_left) == 0.5
    assert one_second_later == [A, I, I]


async def test_issue_bucket_is_charged_before_project_bucket(
    stage: RedisStage, project_id: int
) -> None:
    limits = RateLimits(issue_value=5, issue_bucket_minutes=1, project_value=3)

    first = await outcomes(stage, project_id, limits, events("a", range(5)))
    second = await outcomes(stage, project_id, limits, events("a", range(5, 10)))

    assert first == [A, A, A, P, P]
    assert second == [I] * 5


async def test_project_bucket_is_charged_only_for_events_its_issue_admitted(
    stage: RedisStage, project_id: int
) -> None:
    limits = RateLimits(issue_value=2, issue_bucket_minutes=1, project_value=10)

    issue_a = await outcomes(stage, project_id, limits, events("a", range(5)))
    issue_b = await outcomes(
        stage, project_id, limits, [CountedEvent("b", 0, n, NOW) for n in range(5, 15)]
    )

    assert issue_a == [A, A, I, I, I]
    # The project bucket lost 2 tokens to issue a, not 5: 8 remain for issue b, whose own
    # bucket of 2 stops it first.
    assert issue_b == [A, A] + [I] * 8


async def test_project_bucket_is_shared_by_the_issues_of_the_project(
    stage: RedisStage, project_id: int
) -> None:
    limits = RateLimits(issue_value=4, issue_bucket_minutes=1, project_value=10)
    batch = [CountedEvent(f"issue-{n % 4}", 0, n, NOW) for n in range(16)]

    result = await outcomes(stage, project_id, limits, batch)

    assert result == [A] * 10 + [P] * 6


async def test_null_limits_admit_everything_and_store_no_bucket(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    result = await outcomes(stage, project_id, RateLimits(), events("a", range(1000)))

    assert result == [A] * 1000
    assert await redis.exists(f"{{p:{project_id}}}:tb:p", f"{{p:{project_id}}}:tb:i:a") == 0


async def test_null_bucket_minutes_mean_sixty_minutes(stage: RedisStage, project_id: int) -> None:
    limits = RateLimits(project_value=60)  # one token a minute
    await outcomes(stage, project_id, limits, events("a", range(60)))

    after_59_seconds = await outcomes(stage, project_id, limits, events("a", [60]), NOW + 59)
    after_60_seconds = await outcomes(stage, project_id, limits, events("a", [61, 62]), NOW + 60)

    assert after_59_seconds == [P]
    assert after_60_seconds == [A, P]


async def test_replayed_batch_changes_no_bucket_and_gets_its_first_outcomes(
    stage: RedisStage, project_id: int, snapshot
) -> None:
    limits = RateLimits(issue_value=5, issue_bucket_minutes=1, project_value=3)
    batch = events("a", range(100, 105))
    first = await outcomes(stage, project_id, limits, batch)
    after_first = await snapshot(project_id)

    # Replayed a minute later: a fresh call would find both buckets refilled.
    replay = await outcomes(stage, project_id, limits, batch, NOW + 60)

    assert first == [A, A, A, P, P]
    assert replay == first
    assert await snapshot(project_id) == after_first


async def test_partly_replayed_batch_charges_only_offsets_past_the_watermark(
    stage: RedisStage, project_id: int
) -> None:
    limits = RateLimits(issue_value=3, issue_bucket_minutes=1)
    first = await outcomes(stage, project_id, limits, events("a", [0, 1]))

    overlapping = await outcomes(stage, project_id, limits, events("a", [1, 2, 3, 4]))

    assert first == [A, A]
    # Offset 1 keeps its first outcome without taking the last token; 2 takes it.
    assert overlapping == [A, A, I, I]


async def test_each_partition_keeps_its_own_watermark(stage: RedisStage, project_id: int) -> None:
    limits = RateLimits(issue_value=3, issue_bucket_minutes=1)
    await outcomes(stage, project_id, limits, events("a", [50], partition=0))

    # Offsets 10 and 11 are below partition 0's watermark but new on partition 1.
    result = await outcomes(stage, project_id, limits, events("a", [10, 11, 12], partition=1))

    assert result == [A, A, I]


async def test_replay_log_forgets_offsets_far_below_the_watermark(
    stage: RedisStage, redis: Redis, project_id: int
) -> None:
    limits = RateLimits(issue_value=0)  # every event is limited
    log_key = f"{{p:{project_id}}}:tb:limited:{TOPIC}:0"
    await outcomes(stage, project_id, limits, events("a", [0, 9_999]))
    await outcomes(stage, project_id, limits, events("a", [20_000]))

    replay_of_forgotten = await outcomes(stage, project_id, limits, events("a", [0]))
    replay_of_kept = await outcomes(stage, project_id, limits, events("a", [20_000]))

    assert await redis.zrange(log_key, 0, -1) == [b"20000:i"]
    assert replay_of_forgotten == [A]
    assert replay_of_kept == [I]
