"""RedisStage as the pipeline sees it: round trips, failing open, recovering on its own.

The outage tests run a short-lived redis-server of their own (``tests/support/own_servers.py``), so
stopping it never disturbs the shared Redis other tests use.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from hashlib import sha1
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection

from tests.support.own_servers import OwnRedis, no_retry_client
from worker.counting import CountedEvent
from worker.rate_limits import RateLimitOutcome, RateLimits
from worker.redis_stage import COUNT_AND_LIMIT_LUA, RedisStage

pytestmark = pytest.mark.redis

TOPIC = "exception_events"
NOW = 1_800_000_010.0
A = RateLimitOutcome.ADMITTED
FAIL_OPEN_METRIC = "spikewatch_redis_fail_open_events_total"


class CountingConnection(Connection):
    """A real connection that counts its writes: one write is one round trip."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        await super().send_packed_command(command, check_health)


def batch_of(
    *project_ids: int, events: int = 3
) -> dict[int, tuple[RateLimits, list[CountedEvent]]]:
    return {
        project_id: (
            RateLimits(issue_value=100, issue_bucket_minutes=1),
            [CountedEvent("a", 0, offset, NOW) for offset in range(events)],
        )
        for project_id in project_ids
    }


@pytest.fixture
async def counting_redis(redis_url: str) -> AsyncIterator[Redis]:
    pool = ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = Redis(connection_pool=pool)
    yield client
    await client.aclose()


async def test_a_batch_of_three_projects_takes_one_round_trip(
    counting_redis: Redis, new_project_id: Callable[[], int]
) -> None:
    stage = RedisStage(counting_redis, topic=TOPIC)
    await stage.apply(batch_of(new_project_id()), NOW)  # connects and loads the scripts
    CountingConnection.writes = 0

    result = await stage.apply(batch_of(new_project_id(), new_project_id(), new_project_id()), NOW)

    assert CountingConnection.writes == 1
    assert [p.outcomes for p in result.projects.values()] == [[A, A, A]] * 3


async def test_an_empty_batch_does_not_talk_to_redis(counting_redis: Redis) -> None:
    stage = RedisStage(counting_redis, topic=TOPIC)
    CountingConnection.writes = 0

    result = await stage.apply({7: (RateLimits(), [])}, NOW)

    assert CountingConnection.writes == 0
    assert (result.projects, result.redis_failed) == ({}, False)


async def test_redis_without_the_scripts_gets_them_loaded_within_the_batch(
    own_redis: OwnRedis,
) -> None:
    pool = ConnectionPool(port=own_redis.port, connection_class=CountingConnection)
    client = Redis(connection_pool=pool)
    await client.ping()
    stage = RedisStage(client, topic=TOPIC)
    CountingConnection.writes = 0

    result = await stage.apply(batch_of(1, 2), NOW)

    # The batch (refused: NOSCRIPT), then the batch again, its first call sending the script.
    assert CountingConnection.writes == 2
    assert await client.script_exists(sha1(COUNT_AND_LIMIT_LUA.encode()).hexdigest()) == [True]
    assert result.redis_failed is False
    assert result.projects[1].counts is not None
    assert result.projects[1].counts.issues["a"].current == 3
    await client.aclose()


async def test_stage_fails_open_while_redis_is_down_and_recovers_when_it_returns(
    own_redis: OwnRedis,
) -> None:
    client = no_retry_client(own_redis.port)
    stage = RedisStage(client, topic=TOPIC)
    await stage.apply(batch_of(1), NOW)

    own_redis.stop()
    during = await stage.apply(batch_of(1, 2), NOW)
    own_redis.start()
    await own_redis.wait_ready()
    after = await stage.apply(batch_of(1), NOW)

    assert during.redis_failed is True
    assert {pid: (p.outcomes, p.counts) for pid, p in during.projects.items()} == {
        1: ([A, A, A], None),
        2: ([A, A, A], None),
    }
    assert after.redis_failed is False
    # The restarted server lost everything (no persistence), so offsets 0..2 count anew.
    assert after.projects[1].counts is not None
    assert after.projects[1].counts.issues["a"].current == 3
    await client.aclose()


async def test_failing_open_is_counted_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = no_retry_client(closed_port)
    stage = RedisStage(client, topic=TOPIC, failure_log_interval_seconds=3600)
    before = REGISTRY.get_sample_value(FAIL_OPEN_METRIC) or 0.0

    with caplog.at_level(logging.WARNING, logger="worker.redis_stage"):
        first = await stage.apply(batch_of(1, 2), NOW)
        second = await stage.apply(batch_of(3, events=4), NOW)

    assert (first.redis_failed, second.redis_failed) == (True, True)
    assert second.projects[3].outcomes == [A] * 4
    assert REGISTRY.get_sample_value(FAIL_OPEN_METRIC) == before + 10
    warnings = [r for r in caplog.records if r.name == "worker.redis_stage"]
    assert len(warnings) == 1
    assert "let 6 events through" in warnings[0].getMessage()
    await client.aclose()


async def test_a_client_decoding_responses_reads_the_same_results(
    redis_url: str, project_id: int
) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    stage = RedisStage(client, topic=TOPIC)
    limits = RateLimits(issue_value=2, issue_bucket_minutes=1)
    events = [CountedEvent("a", 0, offset, NOW) for offset in range(3)]

    result = await stage.apply({project_id: (limits, events)}, NOW)

    project = result.projects[project_id]
    assert project.outcomes == [A, A, RateLimitOutcome.RATE_LIMITED_ISSUE]
    assert project.counts is not None
    assert list(project.counts.issues) == ["a"]
    assert project.counts.issues["a"].current == 3
    await client.aclose()
