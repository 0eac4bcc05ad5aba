"""One node of the three-node cluster ``kill -9``ed mid-stream, while a producer with acks=all
keeps sending and the worker keeps consuming, then started again with ``services.sh up
kafka-cluster``: every event whose send was acknowledged is forwarded, every stored input record
is counted in Redis exactly once, and the worker never exits.

The node killed is the worker group's coordinator, which also leads input partitions (the
topics' six leaders spread over the three nodes): the test waits until its death has moved the
group's coordinator and the leadership of those input partitions (and with them the output
topics' partitions it led and the offsets topic's). Forwarding is at-least-once (a batch whose
commit was lost is forwarded again), so the accepted topic must hold every event at least once;
the counts in Redis must not double.
"""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from tests.kafka_cluster.books import (
    counted_in_redis,
    forwarded_uuids,
    project_of_its_own,
    steady_production,
    stored_input,
)
from tests.kafka_cluster.conftest import PARTITIONS, StartWorker
from tests.reliability.kafka_io import StreamProducer, read_all, wait_until_committed
from tests.reliability.streams import issue_events
from tests.support.kafka_cluster import KafkaCluster
from tests.worker.processes import Topics, committed_offsets, wait_for

pytestmark = [pytest.mark.kafka_cluster, pytest.mark.redis, pytest.mark.timeout(90)]

EVENTS = 2_400
ISSUES = 12
# 2,400 events in chunks of 30 a quarter second apart: some 20 s of stream, longer with the
# outage, so that events are sent before, during and after the node is away.
CHUNK = 30
PAUSE_SECONDS = 0.25
KILL_AFTER_EVENTS = 500
# Consumed with the node away before it is started again: the cluster served without it.
CONSUMED_WHILE_DOWN = 500


async def test_a_node_killed_mid_stream_loses_no_acknowledged_event_and_doubles_no_count(
    kafka_cluster: KafkaCluster,
    sqlite_url: str,
    topics: Topics,
    start_worker: StartWorker,
    redis_client: Redis,
) -> None:
    bootstrap = kafka_cluster.bootstrap
    group = f"group-{uuid.uuid4().hex}"
    async with project_of_its_own(sqlite_url, redis_client) as (project, engine):
        events, stream = issue_events(project, EVENTS, ISSUES, PARTITIONS)
        await kafka_cluster.create_topics(topics, PARTITIONS)
        worker = start_worker(sqlite_url, group)
        await worker.wait_until_serving(timeout_seconds=60)
        async with (
            StreamProducer(bootstrap, topics.exception_events) as producer,
            steady_production(
                producer, events, stream, chunk=CHUNK, pause_seconds=PAUSE_SECONDS
            ) as production,
        ):

            async def consumed_at_least(count: int) -> bool:
                return await worker.consumed() >= count

            await wait_for(
                "the stream to flow",
                lambda: consumed_at_least(KILL_AFTER_EVENTS),
                timeout_seconds=40,
                workers=[worker],
            )
            victim = await kafka_cluster.coordinator(group)
            before = (await kafka_cluster.partitions([topics.exception_events]))[
                topics.exception_events
            ]
            led = [state.partition for state in before if state.leader == victim]
            assert led, f"the coordinator (node {victim}) leads no input partition: {before}"
            consumed_at_kill = await worker.consumed()
            committed_at_kill = sum((await committed_offsets(bootstrap, group)).values())
            acknowledged_at_kill = len(production.acknowledged)
            kafka_cluster.kill(victim)
            killed_at = time.monotonic()

            async def moved() -> bool:
                try:
                    states = await kafka_cluster.partitions([topics.exception_events])
                    coordinator = await kafka_cluster.coordinator(group)
                except KafkaError:  # asked of the dead node, or of one not told yet
                    return False
                leaders = {s.partition: s.leader for s in states[topics.exception_events]}
                return coordinator != victim and all(leaders[p] not in (victim, -1) for p in led)

            await wait_for(
                "the victim's partitions and the group's coordinator to move",
                moved,
                timeout_seconds=40,
                workers=[worker],
            )
            moved_seconds = time.monotonic() - killed_at
            await wait_for(
                "the worker to go on consuming without the node",
                lambda: consumed_at_least(consumed_at_kill + CONSUMED_WHILE_DOWN),
                timeout_seconds=40,
                workers=[worker],
            )
            resumed_seconds = time.monotonic() - killed_at
            restart_seconds = await kafka_cluster.start_missing_nodes()
            await production.finished()

        await wait_until_committed(
            bootstrap, group, producer.end_offsets(), timeout_seconds=45, workers=[worker]
        )
        assert worker.running, worker.log_tail()
        stored = await stored_input(bootstrap, topics.exception_events)
        forwarded = await forwarded_uuids(bootstrap, topics.accepted)
        counted = await counted_in_redis(
            engine, redis_client, project, [f"issue-{n}" for n in range(ISSUES)]
        )
        dead = await read_all(bootstrap, topics.dead_letter)

    # Nothing acknowledged was lost; nothing was stored that nobody sent.
    assert set(production.acknowledged) <= set(stored.uuids)
    assert set(stored.uuids) <= {event["uuid"] for event in events}
    # Every stored event forwarded (at least once), none dead-lettered.
    assert set(forwarded) == set(stored.uuids)
    assert dead == []
    # Each stored record counted once: a redelivered batch does not count again.
    assert counted == dict(stored.per_fingerprint)
    print(
        f"\nkilled node {victim} (group coordinator, leader of input partitions {led}) with "
        f"{acknowledged_at_kill} events acknowledged, {consumed_at_kill} consumed and "
        f"{committed_at_kill} committed; its partitions and the coordinator moved after "
        f"{moved_seconds:.1f} s; {CONSUMED_WHILE_DOWN} more consumed {resumed_seconds:.1f} s "
        f"after the kill; "
        f"`up kafka-cluster` took {restart_seconds:.1f} s; slowest acknowledgement "
        f"{production.slowest_ack_seconds:.1f} s; {len(production.unacknowledged)} sends not "
        f"acknowledged; {stored.records} input records for {len(stored.uuids)} events; "
        f"{sum(forwarded.values()) - len(forwarded)} forwarded again"
    )
