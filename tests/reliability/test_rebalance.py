"""A second worker joins a running one mid-stream and leaves again: each rebalance hands
partitions over with batches in flight (the worker does not wait for them), yet every input event
ends exactly once, the buckets hold one application of the stream and the spike is emitted once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from schemas.db import make_engine
from tests.reliability import ledger
from tests.reliability.conftest import BUCKET_SECONDS, LaunchWorker, configure
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
from tests.worker.processes import Topics, create_topics, delete_topics, wait_for

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(300),
]

PARTITIONS = 4
BACKGROUND_EVENTS = 1_500
JOIN_AFTER_EVENTS = 400


async def test_a_worker_joining_and_leaving_mid_stream_changes_no_event_s_fate(
    postgres_database_url: str,
    kafka_bootstrap: str,
    redis_client: Redis,
    stream_projects: StreamProjects,
    launch_worker: LaunchWorker,
) -> None:
    await wait_for_room_in_bucket(BUCKET_SECONDS, 240)
    engine = make_engine(postgres_database_url)
    await configure(engine, stream_projects)
    limits = {stream_projects.limited: ledger.Limits(issue=ISSUE_LIMIT, project=PROJECT_LIMIT)}
    stream = core_stream(stream_projects, PARTITIONS, seed=9)
    stream += background(stream_projects, PARTITIONS, BACKGROUND_EVENTS)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=PARTITIONS)
    group = f"group-{uuid.uuid4().hex}"
    try:
        async with StreamProducer(kafka_bootstrap, topics.exception_events) as producer:
            left = asyncio.Event()

            async def produce_until_the_second_worker_left() -> None:
                # Slow enough that both rebalances happen with events still flowing; the last
                # quarter waits for the leave, so that it lands mid-stream too.
                pending = list(chunks(stream, 25))
                tail = pending[-len(pending) // 4 :]
                for chunk in pending[: -len(tail)]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)
                await left.wait()
                for chunk in tail:
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)

            production = asyncio.create_task(produce_until_the_second_worker_left())
            first = launch_worker(postgres_database_url, kafka_bootstrap, topics, group)
            await first.wait_until_serving()

            async def first_is_busy() -> bool:
                return await first.consumed() >= JOIN_AFTER_EVENTS

            await wait_for("the first worker", first_is_busy, timeout_seconds=60, workers=[first])
            second = launch_worker(postgres_database_url, kafka_bootstrap, topics, group)
            await second.wait_until_serving()

            async def second_took_over_some() -> bool:
                return await second.consumed() > 0

            await wait_for(
                "the second worker to process events",
                second_took_over_some,
                timeout_seconds=90,
                workers=[first, second],
            )
            await asyncio.to_thread(second.stop)
            left.set()
            consumed_after_leave = await first.consumed()
            await production
        await wait_until_committed(
            kafka_bootstrap,
            group,
            producer.end_offsets(),
            timeout_seconds=150,
            workers=[first, second],
        )
        assert first.running
        # The first worker took the second's partitions back and processed more.
        assert await first.consumed() > consumed_after_leave

        expected = ledger.expect(producer.sent, limits)
        observed = await ledger.observe(kafka_bootstrap, topics, redis_client, producer.sent)
        assert ledger.unexplained(expected, observed) == {}
        totals = ledger.outcome_totals(expected, observed)
        assert totals.get(ledger.RATE_LIMITED_PROJECT, 0) == expected.project_limited
        assert sum(totals.values()) == len(stream)
        assert all(len(ids) == 1 for ids in observed.issue_ids_carried.values())

        await ledger.assert_single_application(redis_client, engine, expected, limits)
        burst = (stream_projects.spiking, "burst")
        burst_issue = (await ledger.issue_ids(engine, {burst}))[burst]
        assert ledger.spike_issue_ids(observed) == [burst_issue]
        assert await ledger.spike_ids_stored(engine) == [observed.spikes[0].id]
    finally:
        await delete_topics(kafka_bootstrap, topics)
        await engine.dispose()
