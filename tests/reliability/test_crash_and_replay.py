"""``kill -9`` a worker mid-stream, twice, and restart it: Kafka redelivers what the dead worker
had not committed, and still every input event ends exactly once as forwarded, suppressed,
rate-limited or dead-lettered; spike buckets and token buckets hold one application of the stream;
the burst's spike is emitted once."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from redis.asyncio import Redis

from tests.reliability.conftest import LaunchWorker, Worker
from tests.reliability.core_run import CoreRun, assert_accounted_once, core_run
from tests.reliability.kafka_io import StreamProducer, wait_until_committed
from tests.reliability.streams import StreamProjects, chunks
from tests.worker.processes import committed_offsets
from worker.counting import counting_watermark_key

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

PARTITIONS = 4
# Enough that each incarnation killed at KILL_AFTER_EVENTS leaves work for the next.
BACKGROUND_EVENTS = 4_000
# Each incarnation but the last is killed once it has consumed this many events.
KILL_AFTER_EVENTS = 600
KILLS = 2


class Positions:
    """Where the group's commits and the Redis counting watermarks stand, per input partition."""

    def __init__(self, run: CoreRun, kafka_bootstrap: str, redis: Redis, projects: StreamProjects):
        self._run, self._bootstrap, self._redis, self._projects = (
            run,
            kafka_bootstrap,
            redis,
            projects,
        )

    async def committed(self) -> list[int]:
        """The next offset to read of each partition (0 before any commit)."""
        offsets = await committed_offsets(self._bootstrap, self._run.group)
        topic = self._run.topics.exception_events
        return [max(offsets.get((topic, partition), 0), 0) for partition in range(PARTITIONS)]

    async def counted(self) -> list[int]:
        """The highest offset of each partition counted in Redis, by any project (-1: none)."""
        counted = []
        for partition in range(PARTITIONS):
            keys = [
                counting_watermark_key(project, self._run.topics.exception_events, partition)
                for project in (self._projects.limited, self._projects.spiking)
            ]
            watermarks = [int(value) for value in await self._redis.mget(keys) if value is not None]
            counted.append(max(watermarks, default=-1))
        return counted


async def kill_holding_an_uncommitted_batch(
    worker: Worker, positions: Positions, at_start: tuple[list[int], list[int]]
) -> int:
    """``kill -9`` the worker at a moment when it holds a batch it already counted in Redis but
    did not commit, so that its successor must take that batch again: the worker is frozen
    (SIGSTOP) and looked at until such a moment comes. Returns a lower bound of the events it took
    from the topic since ``at_start`` (the commits and watermarks before it started): what it
    committed, and the counted batch it held."""
    committed_at_start, counted_at_start = at_start
    while True:
        os.kill(worker.pid, signal.SIGSTOP)
        committed, counted = await positions.committed(), await positions.counted()
        held = [
            counted[p] + 1 - committed[p] if counted[p] > counted_at_start[p] else 0
            for p in range(PARTITIONS)
        ]
        if any(events > 0 for events in held):
            worker.kill()
            return sum(
                committed[p] - committed_at_start[p] + max(held[p], 0) for p in range(PARTITIONS)
            )
        os.kill(worker.pid, signal.SIGCONT)
        await asyncio.sleep(0.01)


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
            # Faster than the worker takes it, so a backlog waits and each kill lands while a
            # batch is in hand (done or not, uncommitted): the worker commits after every batch,
            # and one killed between batches would leave nothing to replay.
            async def produce_steadily() -> None:
                for chunk in chunks(run.stream, 50):
                    await producer.send(chunk)

            production = asyncio.create_task(produce_steadily())
            incarnations: list[Worker] = []
            consumed_before_death: list[int] = []
            positions = Positions(run, kafka_bootstrap, redis_client, stream_projects)
            for _ in range(KILLS):
                at_start = (await positions.committed(), await positions.counted())
                worker = launch_worker(sqlite_url, kafka_bootstrap, run.topics, run.group)
                incarnations.append(worker)
                await worker.wait_until_serving()
                while await worker.consumed() < KILL_AFTER_EVENTS:
                    assert worker.running, worker.log_tail()
                    await asyncio.sleep(0.05)
                consumed_before_death.append(
                    await kill_holding_an_uncommitted_batch(worker, positions, at_start)
                )
            survivor = launch_worker(sqlite_url, kafka_bootstrap, run.topics, run.group)
            incarnations.append(survivor)
            await survivor.wait_until_serving()
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
        # counts of the killed ones are lower bounds).
        consumed = sum(consumed_before_death) + await survivor.consumed()
        assert consumed > len(run.stream)
