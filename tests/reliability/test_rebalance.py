"""A second worker joins a running one mid-stream and leaves again: each rebalance comes while
batches are in flight (the worker finishes the one in hand before its partitions go), and every
input event ends exactly once, the buckets hold one application of the stream and the spike is
emitted once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tests.reliability.conftest import LaunchWorker
from tests.reliability.core_run import assert_accounted_once, core_run
from tests.reliability.kafka_io import StreamProducer, wait_until_committed
from tests.reliability.streams import StreamProjects, chunks
from tests.worker.processes import wait_for

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
    async with core_run(
        postgres_database_url,
        kafka_bootstrap,
        stream_projects,
        partitions=PARTITIONS,
        seed=9,
        background_events=BACKGROUND_EVENTS,
    ) as run:
        async with StreamProducer(kafka_bootstrap, run.topics.exception_events) as producer:
            second_started, left = asyncio.Event(), asyncio.Event()

            async def produce_until_the_second_worker_left() -> None:
                # Slow enough that both rebalances happen with events still flowing: the second
                # half of the body waits for the second worker, and goes slower, so that it gets
                # events of its own; the last quarter waits for the leave, so that it lands
                # mid-stream too. (The worker keeps up with this pace: nothing else would be left
                # for the second one.)
                pending = list(chunks(run.stream, 25))
                tail = pending[-len(pending) // 4 :]
                body = pending[: -len(tail)]
                for chunk in body[: len(body) // 2]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)
                await second_started.wait()
                for chunk in body[len(body) // 2 :]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.3)
                await left.wait()
                for chunk in tail:
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)

            production = asyncio.create_task(produce_until_the_second_worker_left())
            first = launch_worker(postgres_database_url, kafka_bootstrap, run.topics, run.group)
            await first.wait_until_serving()

            async def first_is_busy() -> bool:
                return await first.consumed() >= JOIN_AFTER_EVENTS

            await wait_for("the first worker", first_is_busy, timeout_seconds=60, workers=[first])
            second = launch_worker(postgres_database_url, kafka_bootstrap, run.topics, run.group)
            await second.wait_until_serving()
            second_started.set()

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
            run.group,
            producer.end_offsets(),
            timeout_seconds=150,
            workers=[first, second],
        )
        assert first.running
        # The first worker took the second's partitions back and processed more.
        assert await first.consumed() > consumed_after_leave

        await assert_accounted_once(
            run, kafka_bootstrap, redis_client, stream_projects, producer.sent
        )
