"""Log end offsets of the input partitions, read with a Kafka client of the worker's own.

Faust's consumer reports a partition's log end only from its own fetches, so when that consumer
stops, its figure stops too, and the events that keep arriving are invisible to the worker. This
reader asks the broker directly (a ListOffsets request, through an aiokafka consumer that joins no
group and fetches nothing), on the app's event loop, apart from Faust's consumer thread: the
consumer lag and the stall watchdog stay true while that consumer is stuck.

Never raises for an unreachable broker beyond its call: the caller keeps what it read last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition

# A request that gets no answer in this time fails the read; the next read starts afresh.
REQUEST_TIMEOUT_SECONDS = 10.0


class LogEndReader:
    def __init__(
        self, bootstrap_servers: list[str], *, client_id: str = "spikewatch-log-end"
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._client: AIOKafkaConsumer | None = None

    async def end_offsets(
        self, partitions: Collection[tuple[str, int]]
    ) -> dict[TopicPartition, int]:
        """The offset after the last message of each partition, given as ``(topic, partition)``
        (Faust's ``TP`` is one; the keys returned compare equal to it)."""
        if not partitions:
            return {}
        client = await self._started()
        wanted = [TopicPartition(topic, partition) for topic, partition in partitions]
        try:
            return await asyncio.wait_for(
                client.end_offsets(wanted), timeout=REQUEST_TIMEOUT_SECONDS * 1.5
            )
        except BaseException:
            # A client that failed once may hold a broken connection: the next read opens anew.
            await self.close()
            raise

    async def _started(self) -> AIOKafkaConsumer:
        if self._client is None:
            client = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                client_id=self._client_id,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=int(REQUEST_TIMEOUT_SECONDS * 1000),
            )
            try:
                await asyncio.wait_for(client.start(), timeout=REQUEST_TIMEOUT_SECONDS * 1.5)
            except BaseException:
                await client.stop()
                raise
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()
