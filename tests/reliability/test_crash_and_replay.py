"""``kill -9`` a worker mid-stream, twice, and restart it: Kafka redelivers what the dead worker
had not committed, and still every input event ends exactly once as forwarded, suppressed,
rate-limited or dead-lettered; spike buckets and token buckets hold one application of the stream;
the burst's spike is emitted once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tests.reliability.conftest import LaunchWorker, Worker
from tests.reliability.core_run import assert_accounted_once, core_run
from tests.reliability.kafka_io import StreamProducer, wait_until_committed
from tests.reliability.streams import StreamProjects, chunks

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
    async with core_run(
        sqlite_url,
        kafka_bootstrap,
        stream_projects,
        partitions=PARTITIONS,
        seed=8,
        background_events=BACKGROUND_EVENTS,
    ) as run:
        async with StreamProducer(kafka_bootstrap, run.topics.exception_events) as producer:

            async def produce_steadily() -> None:
                for chunk in chunks(run.stream, 50):
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)

            production = asyncio.create_task(produce_steadily())
            incarnations: list[Worker] = []
            consumed_before_death: list[int] = []
            for _ in range(KILLS):
                worker = launch_worker(sqlite_url, kafka_bootstrap, run.topics, run.group)
                incarnations.append(worker)
                await worker.wait_until_serving()
                while (consumed := await worker.consumed()) < KILL_AFTER_EVENTS:
                    assert worker.running, worker.log_tail()
                    await asyncio.sleep(0.05)
                worker.kill()
                consumed_before_death.append(consumed)
            survivor = launch_worker(sqlite_url, kafka_bootstrap, run.topics, run.group)
            incarnations.append(survivor)
            await production
        await wait_until_committed(
            kafka_bootstrap,
            run.group,
            producer.end_offsets(),
            timeout_seconds=150,
            workers=incarnations,
        )
        assert survivor.running

        await assert_accounted_once(
            run, kafka_bootstrap, redis_client, stream_projects, producer.sent
        )
        # Replays really happened: the incarnations consumed more than the stream holds (the
        # counts read just before each kill are lower bounds).
        consumed = sum(consumed_before_death) + await survivor.consumed()
        assert consumed > len(run.stream)
