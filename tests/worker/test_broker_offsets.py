"""The worker's own view of the broker's offsets, on the real broker: log ends and a group's
commits are the broker's, and an unreachable broker fails a read within its bound instead of
hanging it."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from loadtest.api_server import free_loopback_port
from tests.worker.processes import Topics, create_topics, delete_topics, produce
from worker.broker_offsets import CALL_TIMEOUT_SECONDS, BrokerOffsets

pytestmark = pytest.mark.kafka


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` for ``group`` as a consumer with those partitions assigned would."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_log_ends_and_commits_are_the_broker_s_for_each_partition_asked(
    kafka_bootstrap: str,
) -> None:
    topics = Topics.unique()
    topic = topics.exception_events
    group = f"group-{uuid.uuid4().hex}"
    await create_topics(kafka_bootstrap, topics, partitions=3)
    broker = BrokerOffsets([kafka_bootstrap])
    partitions = [(topic, p) for p in range(3)]
    try:
        empty = await broker.end_offsets([(topic, 0)])
        never_committed = await broker.committed_offsets(group, partitions)
        # 5 messages to partition 0, 2 to partition 2, none to partition 1.
        await produce(kafka_bootstrap, topic, [(0, None, b"x")] * 5 + [(2, None, b"y")] * 2)
        await commit(kafka_bootstrap, group, {TopicPartition(topic, 0): 3})
        ends = await broker.end_offsets(partitions)
        committed = await broker.committed_offsets(group, partitions)
        nothing = (await broker.end_offsets([]), await broker.committed_offsets(group, []))
    finally:
        await broker.close()
        await delete_topics(kafka_bootstrap, topics)

    assert list(empty.values()) == [0]
    assert never_committed == {}
    # Keyed so that Faust's TP (a (topic, partition) tuple) finds its offset.
    assert {(tp.topic, tp.partition): end for tp, end in ends.items()} == {
        (topic, 0): 5,
        (topic, 1): 0,
        (topic, 2): 2,
    }
    assert {(tp.topic, tp.partition): offset for tp, offset in committed.items()} == {(topic, 0): 3}
    assert nothing == ({}, {})


async def test_an_unreachable_broker_fails_each_read_in_bounded_time() -> None:
    broker = BrokerOffsets([f"127.0.0.1:{free_loopback_port()}"])
    started = time.monotonic()
    with pytest.raises((KafkaError, OSError, TimeoutError)):
        await broker.end_offsets([("exception_events", 0)])
    with pytest.raises((KafkaError, OSError, TimeoutError)):
        await broker.committed_offsets("a-group", [("exception_events", 0)])
    elapsed = time.monotonic() - started
    await broker.close()

    assert elapsed < 2 * CALL_TIMEOUT_SECONDS
