"""The worker's own log end reader, on the real broker: the offsets it reads are the broker's, and
an unreachable broker fails a read within its timeout instead of hanging it."""

from __future__ import annotations

import time

import pytest
from aiokafka.errors import KafkaError

from loadtest.api_server import free_loopback_port
from tests.worker.processes import Topics, create_topics, delete_topics, produce
from worker.log_end import REQUEST_TIMEOUT_SECONDS, LogEndReader

pytestmark = pytest.mark.kafka


async def test_end_offsets_are_the_broker_s_for_each_partition_asked(kafka_bootstrap: str) -> None:
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=3)
    reader = LogEndReader([kafka_bootstrap])
    try:
        empty = await reader.end_offsets([(topics.exception_events, 0)])
        # 5 messages to partition 0, 2 to partition 2, none to partition 1.
        await produce(
            kafka_bootstrap,
            topics.exception_events,
            [(0, None, b"x")] * 5 + [(2, None, b"y")] * 2,
        )
        ends = await reader.end_offsets([(topics.exception_events, p) for p in range(3)])
        nothing = await reader.end_offsets([])
    finally:
        await reader.close()
        await delete_topics(kafka_bootstrap, topics)

    assert list(empty.values()) == [0]
    # Keyed so that Faust's TP (a (topic, partition) tuple) finds its offset.
    assert {(tp.topic, tp.partition): end for tp, end in ends.items()} == {
        (topics.exception_events, 0): 5,
        (topics.exception_events, 1): 0,
        (topics.exception_events, 2): 2,
    }
    assert nothing == {}


async def test_an_unreachable_broker_fails_the_read_in_bounded_time() -> None:
    reader = LogEndReader([f"127.0.0.1:{free_loopback_port()}"])
    started = time.monotonic()
    with pytest.raises((KafkaError, OSError, TimeoutError)):
        await reader.end_offsets([("exception_events", 0)])
    elapsed = time.monotonic() - started
    await reader.close()

    assert elapsed < REQUEST_TIMEOUT_SECONDS * 2
