"""Counting and rate limits in the pipeline, on the real databases and Redis: exact outcomes of a
project's limits, rate-limited events still counted and suppressed ones not, a redelivered batch
taking effect once, and failing open without Redis."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.redis_keys import project_tag
from schemas.tables import ErrorTrackingSettings, SuppressionRule
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event, iso
from tests.worker.pipelines import BUCKET_START, NOW, KeptMessages, build_pipeline, messages
from worker.outcomes import Outcome
from worker.runtime import connect_redis

pytestmark = pytest.mark.redis

F, S = Outcome.FORWARDED, Outcome.SUPPRESSED
RI, RP = Outcome.RATE_LIMITED_ISSUE, Outcome.RATE_LIMITED_PROJECT


async def configure(engine: AsyncEngine, project_id: int) -> None:
    """Issues 4 events an hour, the project 7; KeyError suppressed."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(ErrorTrackingSettings),
            [
                {
                    "project_id": project_id,
                    "per_issue_rate_limit_value": 4,
                    "per_issue_rate_limit_bucket_size_minutes": 60,
                    "project_rate_limit_value": 7,
                    "project_rate_limit_bucket_size_minutes": 60,
                }
            ],
        )
        await connection.execute(
            insert(SuppressionRule),
            [
                {
                    "id": uuid.uuid4(),
                    "project_id": project_id,
                    "order_key": 0,
                    "filters": {
                        "type": "AND",
                        "values": [{"key": "$exception_types", "value": "KeyError"}],
                    },
                }
            ],
        )


def stream(project_id: int) -> list[bytes]:
    def of(error_type: str) -> bytes:
        return encode(exception_event(project_id, error_type=error_type, timestamp=iso(NOW)))

    return [of("ValueError")] * 6 + [of("KeyError")] * 2 + [of("SyntaxError")] * 5


async def issue_count(redis_client: Redis, project_id: int, issue_id: uuid.UUID | None) -> int:
    value = await redis_client.get(f"{project_tag(project_id)}:cnt:i:{issue_id}:{BUCKET_START}")
    return int(value or 0)


async def test_events_over_a_limit_are_rate_limited_and_still_count_towards_spikes(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    await configure(engine, project)

    records = await build_pipeline(engine, redis_client).process(messages(*stream(project)))

    # ValueError: the issue bucket admits 4 (the project has 3 left). SyntaxError: the issue
    # admits 4, the project only 3 of them; the fifth finds its issue bucket empty.
    assert [r.outcome for r in records] == [F, F, F, F, RI, RI, S, S, F, F, F, RP, RI]
    value_error, key_error, syntax_error = (records[n].issue_id for n in (0, 6, 8))
    assert await issue_count(redis_client, project, value_error) == 6
    assert await issue_count(redis_client, project, syntax_error) == 5
    assert await issue_count(redis_client, project, key_error) == 0


async def test_a_redelivered_batch_gets_its_first_outcomes_and_counts_once(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    await configure(engine, project)
    batch = messages(*stream(project))

    first = await build_pipeline(engine, redis_client).process(batch)
    # Another worker after a rebalance: nothing in memory, the same offsets again.
    again = await build_pipeline(engine, redis_client).process(batch)

    assert [r.outcome for r in again] == [r.outcome for r in first]
    assert await issue_count(redis_client, project, first[0].issue_id) == 6
    assert await issue_count(redis_client, project, first[8].issue_id) == 5


async def test_without_redis_every_event_goes_on_and_the_fail_open_is_counted(
    engine: AsyncEngine, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    await configure(engine, project)
    unreachable = connect_redis("redis://127.0.0.1:1/0")
    sent = KeptMessages()
    sample = ("spikewatch_redis_fail_open_total", {"stage": "count_and_limit"})
    before = REGISTRY.get_sample_value(*sample) or 0.0

    try:
        records = await build_pipeline(engine, unreachable, sent=sent).process(
            messages(*stream(project))
        )
    finally:
        await unreachable.aclose()

    # Suppression needs no Redis; limits do, and let everything through.
    assert [r.outcome for r in records] == [F] * 6 + [S] * 2 + [F] * 5
    assert REGISTRY.get_sample_value(*sample) == before + 1
    assert sent.messages == []
