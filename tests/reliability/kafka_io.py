"""Kafka as the reliability tests use it: a producer that stays open across a long stream and
records where each message landed, reading a topic exactly to its end, and waiting for a consumer
group to commit everything.

Reading to the end offsets (not "until N arrived") sees duplicates and extra messages as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.reliability.streams import Fate, Planned
from tests.support.own_servers import KAFKA_MESSAGE_MAX_BYTES
from tests.worker.processes import KafkaRecord, WorkerProcess, committed_offsets

# Large enough for the hostile 10 MB message on the broker that accepts it.
FETCH_MAX_BYTES = KAFKA_MESSAGE_MAX_BYTES + 1_000_000


Position = tuple[int, int]  # (partition, offset) of an input message


class StreamProducer:
    """Sends planned messages and keeps each one's fate with where it landed, in production order
    (not its bytes: a soak sends gigabytes)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            max_request_size=FETCH_MAX_BYTES,
            linger_ms=5,
            # A broker restart must delay messages, not fail them: retried until delivered.
            request_timeout_ms=60_000,
        )
        self.sent: list[tuple[Fate, Position]] = []

    async def __aenter__(self) -> StreamProducer:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(self, planned: Iterable[Planned]) -> None:
        """Send and wait for the broker's acknowledgement of every message."""
        batch = list(planned)
        acks = [
            await self._producer.send(
                self._topic, item.value, key=item.key, partition=item.partition
            )
            for item in batch
        ]
        for item, metadata in zip(batch, await asyncio.gather(*acks), strict=True):
            self.sent.append((item.fate, (metadata.partition, metadata.offset)))

    def end_offsets(self) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = {}
        for _, (partition, offset) in self.sent:
            key = (self._topic, partition)
            ends[key] = max(ends.get(key, 0), offset + 1)
        return ends


async def read_all(bootstrap: str, topic: str) -> list[KafkaRecord]:
    """Every record of every partition of ``topic``, up to the end offsets as they are now."""
    return [record async for record in records_of(bootstrap, topic)]


async def records_of(bootstrap: str, topic: str) -> AsyncIterator[KafkaRecord]:
    """``read_all`` one record at a time, for topics too large to hold."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_MAX_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        # An explicit seek: seek_to_beginning() is lazy and lost to the reset policy here.
        for tp, first in (await consumer.beginning_offsets(assigned)).items():
            consumer.seek(tp, first)
        while unread := [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            fetched = await consumer.getmany(*unread, timeout_ms=500)
            for tp, messages in fetched.items():
                for m in messages:
                    if m.offset < ends[tp]:
                        yield KafkaRecord(tp.topic, tp.partition, m.offset, m.key, m.value)
    finally:
        await consumer.stop()


async def wait_until_committed(
    bootstrap: str,
    group: str,
    ends: dict[tuple[str, int], int],
    *,
    timeout_seconds: float,
    workers: Sequence[WorkerProcess],
) -> float:
    """Wait until the group committed every offset up to ``ends`` (the worker acks a batch only
    once its effects are durable); return the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            committed = await committed_offsets(bootstrap, group)
        except KafkaError:
            # No coordinator yet (a fresh broker creates its offsets topic on first use).
            committed = {}
        if all(committed.get(key, -1) >= end for key, end in ends.items()):
            return time.monotonic() - started
        # A worker that crashed commits nothing more: fail at once rather than at the timeout.
        gave_up = workers and not any(worker.running for worker in workers)
        if gave_up or time.monotonic() - started > timeout_seconds:
            logs = "\n\n".join(worker.log_tail() for worker in workers)
            raise AssertionError(f"committed {committed}, wanted {ends}:\n{logs}")
        await asyncio.sleep(0.5)
