"""The consumer loop's rules on a stand-in for aiokafka's consumer (the real one is exercised by
the reliability tests): a batch is committed only after its handler returned and only for
partitions still owned; a rebalance waits for the batch in hand, or drops it uncommitted once its
wait is over."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from worker.consumer import BatchConsumer
from worker.records import SourceMessage

TOPIC = "exception_events"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def record(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=(),
    )


class StandInConsumer:
    """Hands out the batches it was given, then stops the loop; records commits."""

    def __init__(self, batches: list[dict[TopicPartition, list[Any]]], owned: set[TopicPartition]):
        self.batches = batches
        self.owned = owned
        self.commits: list[dict[TopicPartition, int]] = []
        self.loop: BatchConsumer | None = None

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if not self.batches:
            assert self.loop is not None
            self.loop._stopping = True
            return {}
        return self.batches.pop(0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def loop_over(
    consumer: StandInConsumer, handle: Any, *, revoke_wait_seconds: float = 5.0
) -> BatchConsumer:
    batches = BatchConsumer(
        consumer,  # type: ignore[arg-type]
        TOPIC,
        handle,
        max_events=100,
        wait_seconds=0.01,
        revoke_wait_seconds=revoke_wait_seconds,
    )
    consumer.loop = batches
    return batches


async def test_a_batch_is_committed_after_its_handler_returned_partition_by_partition() -> None:
    consumer = StandInConsumer(
        [{P0: [record(P0, 10), record(P0, 11)], P1: [record(P1, 4)]}], owned={P0, P1}
    )
    seen: list[tuple[int, int]] = []
    commits_seen_by_handler: list[int] = []

    async def handle(messages: Sequence[SourceMessage]) -> None:
        commits_seen_by_handler.append(len(consumer.commits))
        seen.extend((m.partition, m.offset) for m in messages)

    await loop_over(consumer, handle).run()

    assert seen == [(0, 10), (0, 11), (1, 4)]
    assert commits_seen_by_handler == [0]
    assert consumer.commits == [{P0: 12, P1: 5}]


async def test_nothing_is_committed_for_a_partition_the_worker_no_longer_owns() -> None:
    consumer = StandInConsumer([{P0: [record(P0, 3)], P1: [record(P1, 7)]}], owned={P0, P1})

    async def handle(messages: Sequence[SourceMessage]) -> None:
        consumer.owned.discard(P1)  # moved away while the batch was processed

    await loop_over(consumer, handle).run()

    assert consumer.commits == [{P0: 4}]


async def test_a_rebalance_waits_for_the_batch_in_hand_and_lets_it_commit() -> None:
    consumer = StandInConsumer([{P0: [record(P0, 0)]}], owned={P0})
    release = asyncio.Event()

    async def handle(messages: Sequence[SourceMessage]) -> None:
        await release.wait()

    batches = loop_over(consumer, handle)
    running = asyncio.create_task(batches.run())
    await asyncio.sleep(0.05)
    revoking = asyncio.create_task(batches.on_revoked({P0}))
    await asyncio.sleep(0.05)
    assert not revoking.done()  # still waiting for the batch

    release.set()
    await revoking
    assert consumer.commits == [{P0: 1}]
    await running


async def test_a_batch_that_outlasts_the_rebalance_wait_is_dropped_uncommitted() -> None:
    consumer = StandInConsumer([{P0: [record(P0, 0)]}], owned={P0})

    async def handle(messages: Sequence[SourceMessage]) -> None:
        await asyncio.Event().wait()  # an outage that does not end

    batches = loop_over(consumer, handle, revoke_wait_seconds=0.1)
    running = asyncio.create_task(batches.run())
    await asyncio.sleep(0.05)

    await batches.on_revoked({P0})
    await running

    assert consumer.commits == []
