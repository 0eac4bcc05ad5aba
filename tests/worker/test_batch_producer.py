"""The worker's producer on the real broker: each message on the partition aiokafka's own ``send``
picks for its key, in order within it, acknowledged once its record batch is; and, with a producer
that fails part way (a pure test of the bookkeeping), every message comes back exactly once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from tests.worker.processes import Topics, create_topics, delete_topics, read_topic
from worker.producer import BatchProducer
from worker.sinks import OutgoingMessage

PARTITIONS = 4
# Small record batches, so that a partition's messages need several of them.
MAX_BATCH_BYTES = 16_384
VALUE_BYTES = 3_000


@pytest.mark.kafka
async def test_keyed_messages_land_where_aiokafka_puts_them_in_order(kafka_bootstrap: str) -> None:
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_batch_size=MAX_BATCH_BYTES
    )
    await producer.start()
    try:
        keys = [str(project).encode() for project in range(1, 13)]
        reference = {
            key: (await producer.send_and_wait(topics.spikes, b"", key=key)).partition
            for key in keys
        }
        messages = [
            OutgoingMessage(topics.accepted, keys[n % len(keys)], b"%06d" % n + b"x" * VALUE_BYTES)
            for n in range(300)
        ] + [OutgoingMessage(topics.accepted, None, b"without a key")]

        queued = await BatchProducer(producer).send(messages)
        await asyncio.gather(*(ack for _, ack in queued))
        records = await read_topic(
            kafka_bootstrap, topics.accepted, expected=len(messages), timeout_seconds=30
        )
    finally:
        await producer.stop()
        await delete_topics(kafka_bootstrap, topics)

    assert sorted(m.value for group, _ in queued for m in group) == sorted(
        m.value for m in messages
    )
    # Fewer acknowledgements than messages, more than one per partition: whole record batches.
    assert PARTITIONS < len(queued) < len(messages)
    assert sorted(r.value for r in records) == sorted(m.value for m in messages)
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.key is not None:
            assert record.partition == reference[record.key]
            by_partition[record.partition].append(record.value)
    for values in by_partition.values():
        assert values == sorted(values)  # sent in this order, numbered in it


class _FailsOnSecondBatch:
    """A producer whose second ``send_batch`` finds the broker gone."""

    def __init__(self) -> None:
        self.batches = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> Any:
        return _Builder()

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> Any:
        self.batches += 1
        if self.batches == 2:
            raise KafkaConnectionError("broker gone")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Builder:
    """Holds two messages, as a full record batch would."""

    def __init__(self) -> None:
        self.size = 0

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object | None:
        if self.size == 2:
            return None
        self.size += 1
        return object()


async def test_messages_not_queued_come_back_once_under_a_failed_acknowledgement() -> None:
    messages = [OutgoingMessage("t", str(n % 3).encode(), b"%d" % n) for n in range(9)]

    queued = await BatchProducer(_FailsOnSecondBatch()).send(messages)  # type: ignore[arg-type]

    returned = [m.value for group, _ in queued for m in group]
    assert sorted(returned) == sorted(m.value for m in messages)  # each value is unique
    results = await asyncio.gather(*(ack for _, ack in queued), return_exceptions=True)
    failed = [
        m for (group, _), r in zip(queued, results, strict=True) if r is not None for m in group
    ]
    assert all(isinstance(r, KafkaConnectionError) for r in results if r is not None)
    assert failed and len(failed) < len(messages)
