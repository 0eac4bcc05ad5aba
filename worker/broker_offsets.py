"""What the broker itself says of the input partitions: their log end offsets, and the offsets the
worker's consumer group committed. Read with Kafka clients of the worker's own.

Faust's consumer reports a partition's log end only from its own fetches, so when that consumer
stops, its figures stop too. These clients ask the broker directly (ListOffsets through an aiokafka
consumer that joins no group and fetches nothing; OffsetFetch through an admin client), on the
app's event loop, apart from Faust's consumer thread: the lag gauge and the stall watchdog stay
true while that consumer is stuck.

Every call gives up after a bounded time; the caller keeps what it read last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Collection
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

# A request that gets no answer in this time fails the read; the next read starts afresh.
REQUEST_TIMEOUT_SECONDS = 10.0
# The most one call may take, connecting included.
CALL_TIMEOUT_SECONDS = 1.5 * REQUEST_TIMEOUT_SECONDS

Partitions = Collection[tuple[str, int]]
T = TypeVar("T")


class BrokerOffsets:
    def __init__(
        self, bootstrap_servers: list[str], *, client_id: str = "spikewatch-offsets"
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def end_offsets(self, partitions: Partitions) -> dict[TopicPartition, int]:
        """The offset after the last message of each partition, given as ``(topic, partition)``
        (Faust's ``TP`` is one; the keys returned compare equal to it)."""
        if not partitions:
            return {}
        return await self._bounded(self._end_offsets(_topic_partitions(partitions)))

    async def committed_offsets(
        self, group: str, partitions: Partitions
    ) -> dict[TopicPartition, int]:
        """The offset ``group`` committed for each partition; partitions it never committed are
        left out."""
        if not partitions:
            return {}
        return await self._bounded(self._committed(group, _topic_partitions(partitions)))

    async def _end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                client_id=self._client_id,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=int(REQUEST_TIMEOUT_SECONDS * 1000),
            )
            self._consumer = consumer
            await consumer.start()
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions)
        return ends

    async def _committed(
        self, group: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap_servers,
                client_id=self._client_id,
                request_timeout_ms=int(REQUEST_TIMEOUT_SECONDS * 1000),
            )
            self._admin = admin
            await admin.start()
        offsets = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, timeout=CALL_TIMEOUT_SECONDS)
        except BaseException:
            # A client that failed once may hold a broken connection: the next read opens anew.
            await self.close()
            raise

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        admin, self._admin = self._admin, None
        # Closing must not hang on what made the call fail.
        for client in (consumer, admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_closed(client), timeout=CALL_TIMEOUT_SECONDS)


async def _closed(client: AIOKafkaConsumer | AIOKafkaAdminClient) -> None:
    if isinstance(client, AIOKafkaConsumer):
        await client.stop()
    else:
        await client.close()


def _topic_partitions(partitions: Partitions) -> list[TopicPartition]:
    return [TopicPartition(topic, partition) for topic, partition in partitions]
