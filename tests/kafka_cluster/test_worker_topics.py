"""The worker started against the three-node cluster creates its four topics with the configured
partitions, three replicas and ``min.insync.replicas=2`` set on each topic, and events flow
through them end to end, each forwarded and counted once.

Five partitions, not the cluster's default six: a topic the broker created by itself would then
show. Three replicas is the cluster's default too and cannot be told apart that way; the
in-sync minimum can, being read as a config of the topic itself.
"""

from __future__ import annotations

import uuid

import msgspec
import pytest
from redis.asyncio import Redis

from tests.kafka_cluster.books import project_of_its_own
from tests.kafka_cluster.conftest import StartWorker
from tests.reliability import ledger
from tests.reliability.kafka_io import StreamProducer, read_all, wait_until_committed
from tests.reliability.streams import issue_events
from tests.support.kafka_cluster import (
    MIN_INSYNC_REPLICAS,
    NODE_IDS,
    REPLICATION_FACTOR,
    KafkaCluster,
)
from tests.worker.processes import Topics

pytestmark = [pytest.mark.kafka_cluster, pytest.mark.redis, pytest.mark.timeout(90)]

PARTITIONS = 5
EVENTS = 150
ISSUES = 5


async def test_the_worker_creates_replicated_topics_and_events_flow_through_them(
    kafka_cluster: KafkaCluster,
    sqlite_url: str,
    topics: Topics,
    start_worker: StartWorker,
    redis_client: Redis,
) -> None:
    group = f"group-{uuid.uuid4().hex}"
    async with project_of_its_own(sqlite_url, redis_client) as (project, engine):
        worker = start_worker(sqlite_url, group, KAFKA_TOPIC_PARTITIONS=str(PARTITIONS))
        await worker.wait_until_serving(timeout_seconds=60)
        # Serving means the topics were declared; their replicas may still be catching up.
        await kafka_cluster.wait_until_in_sync(topics.all(), timeout_seconds=30)

        states = await kafka_cluster.partitions(topics.all())
        assert {name: len(partitions) for name, partitions in states.items()} == dict.fromkeys(
            topics.all(), PARTITIONS
        )
        for name, partitions in states.items():
            for state in partitions:
                assert len(state.replicas) == REPLICATION_FACTOR, (name, state)
                assert set(state.replicas) == set(NODE_IDS), (name, state)
        overrides = await kafka_cluster.topic_overrides(topics.all())
        assert {name: config.get("min.insync.replicas") for name, config in overrides.items()} == (
            dict.fromkeys(topics.all(), str(MIN_INSYNC_REPLICAS))
        )

        events, stream = issue_events(project, EVENTS, ISSUES, PARTITIONS)
        async with StreamProducer(kafka_cluster.bootstrap, topics.exception_events) as producer:
            await producer.send(stream)
        await wait_until_committed(
            kafka_cluster.bootstrap,
            group,
            producer.end_offsets(),
            timeout_seconds=60,
            workers=[worker],
        )
        accepted = await read_all(kafka_cluster.bootstrap, topics.accepted)

        forwarded = sorted(msgspec.json.decode(record.value)["uuid"] for record in accepted)
        assert forwarded == sorted(event["uuid"] for event in events)
        ids = await ledger.issue_ids(engine, {(project, f"issue-{n}") for n in range(ISSUES)})
        assert {
            fingerprint: await ledger.counted_in_redis(redis_client, project, issue_id)
            for (_, fingerprint), issue_id in ids.items()
        } == {f"issue-{n}": EVENTS // ISSUES for n in range(ISSUES)}
        assert worker.running
