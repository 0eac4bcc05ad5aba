"""``kill -9`` a worker mid-stream, twice, and restart it: Kafka redelivers what the dead worker
had not committed, and still every input event ends exactly once as forwarded, suppressed,
rate-limited or dead-lettered; spike buckets and token buckets hold one application of the stream;
the burst's spike is emitted once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from schemas.db import make_engine
from tests.reliability import ledger
from tests.reliability.conftest import BUCKET_SECONDS, LaunchWorker, Worker, configure
from tests.reliability.kafka_io import StreamProducer, wait_until_committed
from tests.reliability.streams import (
    ISSUE_LIMIT,
    PROJECT_LIMIT,
    StreamProjects,
    background,
    chunks,
    core_stream,
)
from tests.worker.operator_api import wait_for_room_in_bucket
from tests.worker.processes import Topics, create_topics, delete_topics

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

PARTITIONS = 4
BACKGROUND_EVENTS = 1_200
# Each incarnation but the last is killed once it has consumed this many events.
KILL_AFTER_EVENTS = 600
KILLS = 2


async def test_a_worker_killed_twice_mid_stream_accounts_for_every_event_exactly_once(
    sqlite_url: str,
    kafka_bootstrap: str,
    redis_client: Redis,
    stream_projects: StreamProjects,
    launch_worker: LaunchWorker,
) -> None:
    await wait_for_room_in_bucket(BUCKET_SECONDS, 240)
    engine = make_engine(sqlite_url)
    await configure(engine, stream_projects)
    limits = {stream_projects.limited: ledger.Limits(issue=ISSUE_LIMIT, project=PROJECT_LIMIT)}
    stream = core_stream(stream_projects, PARTITIONS, seed=8)
    stream += background(stream_projects, PARTITIONS, BACKGROUND_EVENTS)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=PARTITIONS)
    group = f"group-{uuid.uuid4().hex}"
    try:
        async with StreamProducer(kafka_bootstrap, topics.exception_events) as producer:

            async def produce_steadily() -> None:
                for chunk in chunks(stream, 50):
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)

            production = asyncio.create_task(produce_steadily())
            incarnations: list[Worker] = []
            consumed_before_death: list[int] = []
            for _ in range(KILLS):
                worker = launch_worker(sqlite_url, kafka_bootstrap, topics, group)
                incarnations.append(worker)
                await worker.wait_until_serving()
                while (consumed := await worker.consumed()) < KILL_AFTER_EVENTS:
                    assert worker.running, worker.log_tail()
                    await asyncio.sleep(0.05)
                worker.kill()
                consumed_before_death.append(consumed)
            survivor = launch_worker(sqlite_url, kafka_bootstrap, topics, group)
            incarnations.append(survivor)
            await production
        await wait_until_committed(
            kafka_bootstrap,
            group,
            producer.end_offsets(),
            timeout_seconds=150,
            workers=incarnations,
        )
        assert survivor.running

        expected = ledger.expect(producer.sent, limits)
        observed = await ledger.observe(kafka_bootstrap, topics, redis_client, producer.sent)
        assert ledger.unexplained(expected, observed) == {}
        totals = ledger.outcome_totals(expected, observed)
        assert totals.get(ledger.RATE_LIMITED_PROJECT, 0) == expected.project_limited
        assert sum(totals.values()) == len(stream)
        # Replays really happened: the incarnations consumed more than the stream holds (the
        # counts read just before each kill are lower bounds).
        consumed = sum(consumed_before_death) + await survivor.consumed()
        assert consumed > len(stream)
        # However often an event was forwarded, it always carried the same issue.
        assert all(len(ids) == 1 for ids in observed.issue_ids_carried.values())

        await ledger.assert_single_application(redis_client, engine, expected, limits)
        burst_issue = (await ledger.issue_ids(engine, {(stream_projects.spiking, "burst")}))[
            (stream_projects.spiking, "burst")
        ]
        assert ledger.spike_issue_ids(observed) == [burst_issue]
        assert await ledger.spike_ids_stored(engine) == [observed.spikes[0].id]
    finally:
        await delete_topics(kafka_bootstrap, topics)
        await engine.dispose()
