"""Redis stopped under a running worker, end to end: the worker keeps forwarding (no rate limits,
no counting, the fail-open counted), does not crash, and counts and limits again once Redis is
back. The worker runs on a redis-server of this test's own, never the shared one."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis
from sqlalchemy import insert

from schemas.db import make_engine
from schemas.redis_keys import project_tag
from schemas.tables import ErrorTrackingSettings
from tests.support.own_servers import OwnRedis
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event
from tests.worker.processes import (
    Topics,
    WorkerProcess,
    create_topics,
    delete_topics,
    outcome_counts,
    produce,
    read_topic,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(180)]

ISSUE_LIMIT = 5
WAVE = 8
FAIL_OPEN = 'spikewatch_redis_fail_open_total{stage="count_and_limit"}'


async def issue_counts(redis_url: str, project_id: int) -> int:
    """Every event counted in any spike bucket of the project's issues."""
    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{project_tag(project_id)}:cnt:i:*")]
        return sum(int(value) for value in await client.mget(keys)) if keys else 0
    finally:
        await client.aclose()


async def test_without_redis_the_worker_keeps_forwarding_and_counts_again_once_it_is_back(
    sqlite_url: str,
    kafka_bootstrap: str,
    own_redis: OwnRedis,
    start_worker: Any,
) -> None:
    project = 10**9 + uuid.uuid4().int % 10**9
    engine = make_engine(sqlite_url)
    await add_projects(engine, project)
    async with engine.begin() as connection:
        await connection.execute(
            insert(ErrorTrackingSettings),
            [{"project_id": project, "per_issue_rate_limit_value": ISSUE_LIMIT}],
        )
    await engine.dispose()
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    try:
        worker: WorkerProcess = start_worker(
            sqlite_url, topics, f"group-{uuid.uuid4().hex}", redis=own_redis.url
        )
        accepted = 0

        async def wave() -> list[str]:
            events = [exception_event(project) for _ in range(WAVE)]
            await produce(
                kafka_bootstrap, topics.exception_events, [(0, None, encode(e)) for e in events]
            )
            return [e["uuid"] for e in events]

        async def forwarded(expected: int) -> list[str]:
            records = await read_topic(
                kafka_bootstrap, topics.accepted, expected=expected, timeout_seconds=60
            )
            return [msgspec.json.decode(r.value)["uuid"] for r in records]

        limited = await wave()
        accepted += ISSUE_LIMIT
        assert await forwarded(accepted) == limited[:ISSUE_LIMIT], worker.log_tail()
        assert await issue_counts(own_redis.url, project) == WAVE

        own_redis.stop()
        unlimited = await wave()
        accepted += WAVE
        assert (await forwarded(accepted))[-WAVE:] == unlimited, worker.log_tail()
        assert worker.running
        failed_open = (await worker.metrics())[FAIL_OPEN]
        assert failed_open >= 1

        # Back empty (it kept nothing): a full token bucket again, and counting from zero.
        own_redis.start()
        await own_redis.wait_ready()
        recovered = await wave()
        accepted += ISSUE_LIMIT
        assert (await forwarded(accepted))[-ISSUE_LIMIT:] == recovered[:ISSUE_LIMIT]
        assert await issue_counts(own_redis.url, project) == WAVE

        async def all_counted() -> bool:
            return (await worker.metrics())["spikewatch_events_consumed_total"] == 3 * WAVE

        await wait_for("the metrics", all_counted, timeout_seconds=15, workers=[worker])
        samples = await worker.metrics()
        assert outcome_counts(samples) == {
            "forwarded": 2 * ISSUE_LIMIT + WAVE,
            "suppressed": 0,
            "rate_limited_issue": 2 * (WAVE - ISSUE_LIMIT),
            "rate_limited_project": 0,
            "dead_lettered": 0,
        }
        # Only the batches of the outage failed open.
        assert samples[FAIL_OPEN] == failed_open
    finally:
        await delete_topics(kafka_bootstrap, topics)
