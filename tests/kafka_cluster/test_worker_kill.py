"""Three worker processes sharing one consumer group on the three-node cluster, each under a
static ``WORKER_INSTANCE_ID``; one ``kill -9``ed mid-stream. Once its session times out its
partitions move to the other two, which report them in /metrics and commit every one of them to
the end; every stored input event is forwarded and counted in Redis exactly once.

PostgreSQL, not SQLite, is the database: three processes write issues and frames at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from tests.kafka_cluster.books import (
    counted_in_redis,
    forwarded_uuids,
    project_of_its_own,
    steady_production,
    stored_input,
)
from tests.kafka_cluster.conftest import PARTITIONS, StartWorker
from tests.reliability.conftest import Worker
from tests.reliability.kafka_io import StreamProducer, wait_until_committed
from tests.reliability.streams import issue_events
from tests.support.kafka_cluster import KafkaCluster
from tests.worker.processes import Topics, committed_offsets, wait_for

pytestmark = [
    pytest.mark.kafka_cluster,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(90),
]

WORKERS = 3
# The shortest the worker accepts: a static member's partitions wait this long after its death.
SESSION_TIMEOUT_SECONDS = 6
EVENTS = 2_400
ISSUES = 12
CHUNK = 30
PAUSE_SECONDS = 0.25
KILL_AFTER_EVENTS = 500


async def assignments(workers: list[Worker]) -> list[set[int]]:
    return list(await asyncio.gather(*(worker.assigned_partitions() for worker in workers)))


async def test_a_killed_workers_partitions_move_to_the_others_and_nothing_is_lost_or_recounted(
    kafka_cluster: KafkaCluster,
    postgres_database_url: str,
    topics: Topics,
    start_worker: StartWorker,
    redis_client: Redis,
) -> None:
    bootstrap = kafka_cluster.bootstrap
    run = uuid.uuid4().hex[:8]
    group = f"group-{run}"
    async with project_of_its_own(postgres_database_url, redis_client) as (project, engine):
        events, stream = issue_events(project, EVENTS, ISSUES, PARTITIONS)
        await kafka_cluster.create_topics(topics, PARTITIONS)
        workers = [
            start_worker(
                postgres_database_url,
                group,
                WORKER_INSTANCE_ID=f"kafka-cluster-{run}-{n}",
                CONSUMER_SESSION_TIMEOUT_SECONDS=str(SESSION_TIMEOUT_SECONDS),
            )
            for n in range(WORKERS)
        ]
        await asyncio.gather(*(w.wait_until_serving(timeout_seconds=60) for w in workers))

        async def all_three_own_partitions() -> bool:
            owned = await assignments(workers)
            return all(owned) and set().union(*owned) == set(range(PARTITIONS))

        # The lag gauge names a worker's partitions once its 5 s offsets refresh ran.
        await wait_for(
            "the group to spread over the three workers",
            all_three_own_partitions,
            timeout_seconds=40,
            workers=workers,
        )
        async with (
            StreamProducer(bootstrap, topics.exception_events) as producer,
            steady_production(
                producer, events, stream, chunk=CHUNK, pause_seconds=PAUSE_SECONDS
            ) as production,
        ):

            async def consumed() -> int:
                return sum(await asyncio.gather(*(w.consumed() for w in workers if w.running)))

            async def mid_stream() -> bool:
                return await consumed() >= KILL_AFTER_EVENTS

            await wait_for("the stream to flow", mid_stream, timeout_seconds=40, workers=workers)
            victim, *survivors = workers
            orphaned = await victim.assigned_partitions()
            committed_at_kill = await committed_offsets(bootstrap, group)
            victim.kill()
            killed_at = time.monotonic()

            async def survivors_own_everything() -> bool:
                owned = await assignments(survivors)
                return set().union(*owned) == set(range(PARTITIONS))

            await wait_for(
                "the survivors to take the killed worker's partitions",
                survivors_own_everything,
                timeout_seconds=40,
                workers=survivors,
            )
            moved_seconds = time.monotonic() - killed_at
            await production.finished()

        ends = producer.end_offsets()
        caught_up_seconds = await wait_until_committed(
            bootstrap, group, ends, timeout_seconds=45, workers=survivors
        )
        committed = await committed_offsets(bootstrap, group)
        assert all(worker.running for worker in survivors)
        stored = await stored_input(bootstrap, topics.exception_events)
        forwarded = await forwarded_uuids(bootstrap, topics.accepted)
        counted = await counted_in_redis(
            engine, redis_client, project, [f"issue-{n}" for n in range(ISSUES)]
        )

    assert orphaned, "the killed worker owned no partition"
    # The killed worker's partitions were committed past where it left them, by the others.
    for partition in orphaned:
        key = (topics.exception_events, partition)
        assert committed[key] > committed_at_kill.get(key, 0), (partition, committed_at_kill)
    assert set(production.acknowledged) <= set(stored.uuids)
    assert set(forwarded) == set(stored.uuids)
    assert counted == dict(stored.per_fingerprint)
    print(
        f"\nkilled the worker owning partitions {sorted(orphaned)}; the survivors owned them "
        f"{moved_seconds:.1f} s later and committed everything {caught_up_seconds:.1f} s after "
        f"the stream ended; {stored.records} input records, "
        f"{sum(forwarded.values()) - len(forwarded)} forwarded again"
    )
