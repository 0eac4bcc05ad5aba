"""A worker that dies after a batch's effects are durable and before its offsets are committed.

The dying worker is the real consumer loop and pipeline, in this process, on the real broker,
Redis and database; it dies right after the batch that published the burst's spike, between
``handle`` and the commit, where a ``kill -9`` would leave things the same way: effects durable,
nothing committed. A worker process started afterwards in the same group is handed that batch
again; every event still ends exactly once, the buckets hold one application of the stream, and the
spike is on the topic and in the database once.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from schemas.settings import Settings
from tests.reliability import ledger
from tests.reliability.conftest import BUCKET_SECONDS, LaunchWorker
from tests.reliability.core_run import CoreRun, assert_accounted_once, core_run
from tests.reliability.kafka_io import StreamProducer, wait_until_committed
from tests.reliability.streams import StreamProjects
from tests.worker.processes import committed_offsets
from worker.consumer import BatchConsumer, Membership, group_consumer
from worker.producer import BatchProducer
from worker.records import SourceMessage
from worker.runtime import WorkerRuntime

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

PARTITIONS = 2
BATCH_MAX_EVENTS = 100


class DiedBeforeCommit(Exception):
    def __init__(self, batch: Sequence[SourceMessage]) -> None:
        super().__init__(f"died after a batch of {len(batch)} events, before its commit")
        self.batch = batch


async def die_after_the_spike(
    run: CoreRun, settings: Settings, kafka_bootstrap: str
) -> Sequence[SourceMessage]:
    """Run the consumer loop until the batch whose effects stored the first spike is done; end it
    there, before that batch's commit. Returns the batch."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    runtime = WorkerRuntime.create(settings, send=BatchProducer(producer).send)

    async def handle(batch: Sequence[SourceMessage]) -> None:
        await runtime.handle(batch)
        if await ledger.spike_ids_stored(run.engine):
            raise DiedBeforeCommit(batch)

    consumer = group_consumer(
        [kafka_bootstrap], Membership(group=run.group, session_timeout_seconds=10)
    )
    batches = BatchConsumer(
        consumer,
        run.topics.exception_events,
        handle,
        max_events=BATCH_MAX_EVENTS,
        wait_seconds=0.2,
    )
    await batches.start()
    try:
        with pytest.raises(DiedBeforeCommit) as died:
            await batches.run()
    finally:
        # Auto-commit is off: stopping commits nothing, as a killed process would not.
        await consumer.stop()
        await runtime.close()
        await producer.stop()
    return died.value.batch


async def test_a_batch_done_but_not_committed_is_redelivered_and_counted_once(
    sqlite_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: Redis,
    stream_projects: StreamProjects,
    launch_worker: LaunchWorker,
) -> None:
    async with core_run(
        sqlite_url,
        kafka_bootstrap,
        stream_projects,
        partitions=PARTITIONS,
        seed=12,
        background_events=600,
    ) as run:
        async with StreamProducer(kafka_bootstrap, run.topics.exception_events) as producer:
            await producer.send(run.stream)
        settings = Settings(
            database_url=sqlite_url,
            redis_url=redis_url,
            kafka_bootstrap_servers=kafka_bootstrap,
            topic_exception_events=run.topics.exception_events,
            topic_exception_events_accepted=run.topics.accepted,
            topic_exception_events_dlq=run.topics.dead_letter,
            topic_spike_events=run.topics.spikes,
            consumer_group=run.group,
            bucket_size_seconds=BUCKET_SECONDS,
            batch_max_events=BATCH_MAX_EVENTS,
        )

        batch = await die_after_the_spike(run, settings, kafka_bootstrap)

        committed = await committed_offsets(kafka_bootstrap, run.group)
        for message in batch:
            # No commit of the dead worker reaches into its last batch.
            assert committed.get((message.topic, message.partition), 0) <= message.offset
        survivor = launch_worker(sqlite_url, kafka_bootstrap, run.topics, run.group)
        ends = producer.end_offsets()
        await wait_until_committed(
            kafka_bootstrap, run.group, ends, timeout_seconds=120, workers=[survivor]
        )
        # The survivor read everything after the dead worker's last commit, its batch included.
        assert await survivor.consumed() == sum(
            end - committed.get(key, 0) for key, end in ends.items()
        )
        await assert_accounted_once(
            run, kafka_bootstrap, redis_client, stream_projects, producer.sent
        )
