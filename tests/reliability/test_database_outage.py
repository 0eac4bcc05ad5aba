"""The worker's PostgreSQL goes away mid-stream (an immediate shutdown: sessions cut, as in a
crash) and comes back some seconds later. While it is away the worker records nothing it cannot,
so it acks nothing past the last batch it stored; once it is back, the same worker reconnects and
catches up, each event counted once.

The cluster is this test's own; tests/worker covers a database that is not migrated yet.
"""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from bench.redis_cleanup import forget_projects
from schemas.db import make_engine
from schemas.tables import Issue
from tests.reliability import ledger
from tests.reliability.conftest import LaunchWorker
from tests.reliability.kafka_io import StreamProducer, read_all, wait_until_committed
from tests.reliability.streams import Planned
from tests.support.databases import fresh_database
from tests.support.own_servers import OwnPostgres
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event
from tests.worker.pipelines import new_project_ids
from tests.worker.processes import (
    Topics,
    committed_offsets,
    create_topics,
    delete_topics,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(240)]

WAVE = 20
DATABASE_RETRIES = 'spikewatch_infrastructure_retries_total{dependency="database"}'
# How long the database stays away once the worker is seen retrying it.
OUTAGE_SECONDS = 8


@pytest.fixture
async def own_database_url(own_postgres: OwnPostgres, tmp_path: pathlib.Path) -> AsyncIterator[str]:
    async with fresh_database("postgresql", tmp_path, own_postgres.admin_url) as url:
        yield url


async def test_while_the_database_is_away_nothing_is_acked_and_the_worker_catches_up_after(
    own_postgres: OwnPostgres,
    own_database_url: str,
    kafka_bootstrap: str,
    redis_client: Redis,
    launch_worker: LaunchWorker,
) -> None:
    [project] = new_project_ids(1)
    engine = make_engine(own_database_url)
    await add_projects(engine, project)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    group = f"group-{uuid.uuid4().hex}"
    topic_partition = (topics.exception_events, 0)

    def wave(label: str) -> list[dict[str, object]]:
        # New fingerprints: the worker cannot assign their issues without the database.
        return [
            exception_event(project, **{"$exception_fingerprint": f"{label}-{n % 5}"})
            for n in range(WAVE)
        ]

    try:
        worker = launch_worker(own_database_url, kafka_bootstrap, topics, group)
        async with StreamProducer(kafka_bootstrap, topics.exception_events) as producer:
            stored = wave("before")
            await producer.send(Planned(0, encode(event)) for event in stored)
            await wait_until_committed(
                kafka_bootstrap, group, producer.end_offsets(), timeout_seconds=60, workers=[worker]
            )
            own_postgres.crash()
            outage_events = wave("during")
            await producer.send(Planned(0, encode(event)) for event in outage_events)

            async def retrying() -> bool:
                return (await worker.metrics()).get(DATABASE_RETRIES, 0) > 0

            await wait_for("database retries", retrying, timeout_seconds=30, workers=[worker])
            await asyncio.sleep(OUTAGE_SECONDS)
            # Nothing of the outage's batch was acked, so nothing of it was committed or sent.
            assert (await committed_offsets(kafka_bootstrap, group))[topic_partition] == WAVE
            assert len(await read_all(kafka_bootstrap, topics.accepted)) == WAVE
            assert worker.running

            own_postgres.start()
            after = wave("after")
            await producer.send(Planned(0, encode(event)) for event in after)
            await wait_until_committed(
                kafka_bootstrap, group, producer.end_offsets(), timeout_seconds=90, workers=[worker]
            )

        forwarded = [
            msgspec.json.decode(record.value)["uuid"]
            for record in await read_all(kafka_bootstrap, topics.accepted)
        ]
        assert sorted(forwarded) == sorted(e["uuid"] for e in stored + outage_events + after)
        async with engine.connect() as connection:
            assert await connection.scalar(select(func.count()).select_from(Issue)) == 15
        keys = {
            (project, f"{label}-{n}") for label in ("before", "during", "after") for n in range(5)
        }
        ids = await ledger.issue_ids(engine, keys)
        assert {
            key: await ledger.counted_in_redis(redis_client, project, issue_id)
            for key, issue_id in ids.items()
        } == dict.fromkeys(keys, WAVE // 5)
    finally:
        await delete_topics(kafka_bootstrap, topics)
        await forget_projects(redis_client, [project])
        await engine.dispose()
