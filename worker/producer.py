"""Queues a batch's outgoing messages as a few record batches, one per topic partition at a time,
instead of one producer call per message.

aiokafka's ``send`` costs a coroutine, a partitioning (murmur2 in Python), a queue step and a
future for every message; a thousand forwarded events a batch made that a third of the cost of
forwarding. Here each message is appended to its partition's ``BatchBuilder`` in C and each builder
is handed over whole with ``send_batch``: one acknowledgement per builder. Messages go to the
partition aiokafka's default partitioner would choose (murmur2 of the key over every partition,
as the Java client; a random one for a message without a key), in their order within it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from worker.sinks import OutgoingMessage, Queued

# Keys are project ids, so a handful per topic; the memo is dropped whole should it ever grow.
MAX_REMEMBERED_KEYS = 100_000


class BatchProducer:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._partitioner = DefaultPartitioner()
        # topic -> (its partitions, key -> partition) for the partitions last seen.
        self._partitions: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[Queued]:
        """Queue every message; returns each group queued together with the acknowledgement to
        await. If queueing fails, the messages not queued come back under an acknowledgement that
        carries the error, so that the caller sends them again."""
        queued: list[Queued] = []
        pending: dict[tuple[str, int], tuple[Any, list[OutgoingMessage]]] = {}
        appended = 0
        # Each topic's partitions are asked of the producer once a call, not once a message.
        partitioning: dict[str, tuple[list[int], dict[bytes, int]]] = {}
        try:
            for message in messages:
                topic = message.topic
                if topic not in partitioning:
                    partitioning[topic] = await self._partitioning(topic)
                position = (topic, self._partition(partitioning[topic], message.key))
                builder, group = pending.get(position) or self._new_group(pending, position)
                if builder.append(key=message.key, value=message.value, timestamp=None) is None:
                    queued.append((group, await self._send_batch(builder, position)))
                    builder, group = self._new_group(pending, position)
                    builder.append(key=message.key, value=message.value, timestamp=None)
                group.append(message)
                appended += 1
            for position, (builder, group) in list(pending.items()):
                queued.append((group, await self._send_batch(builder, position)))
                del pending[position]
        except Exception as exc:
            not_queued = [m for _, group in pending.values() for m in group]
            queued.append(([*not_queued, *messages[appended:]], _failed(exc)))
        return queued

    def _new_group(
        self, pending: dict[tuple[str, int], tuple[Any, list[OutgoingMessage]]], position: Any
    ) -> tuple[Any, list[OutgoingMessage]]:
        pending[position] = (self._producer.create_batch(), [])
        return pending[position]

    async def _send_batch(self, builder: Any, position: tuple[str, int]) -> Awaitable[Any]:
        topic, partition = position
        acknowledgement: Awaitable[Any] = await self._producer.send_batch(
            builder, topic, partition=partition
        )
        return acknowledgement

    async def _partitioning(self, topic: str) -> tuple[list[int], dict[bytes, int]]:
        """The topic's partitions as the producer knows them now, and its memo of keys to them."""
        partitions = sorted(await self._producer.partitions_for(topic))
        known = self._partitions.get(topic)
        if known is None or known[0] != partitions or len(known[1]) > MAX_REMEMBERED_KEYS:
            known = self._partitions[topic] = (partitions, {})
        return known

    def _partition(
        self, partitioning: tuple[list[int], dict[bytes, int]], key: bytes | None
    ) -> int:
        partitions, by_key = partitioning
        if key is None:
            return int(self._partitioner(None, partitions, partitions))
        if key not in by_key:
            by_key[key] = int(self._partitioner(key, partitions, partitions))
        return by_key[key]


def _failed(exc: Exception) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future
