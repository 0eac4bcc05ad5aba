"""Kafka plumbing of the benchmark: its own topics (created fresh, deleted after), bulk loading with
a batching producer, and the end offsets that prove how much a topic holds.

It never reads the worker's consumer group and never touches a topic it did not create.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.generator import GeneratedEvent

# Divisible by 1, 2 and 3, so that each of up to three worker processes in one group gets an
# equal share of the input (bench/main.py, the scaling part).
INPUT_PARTITIONS = 6
# Batching for bulk loads: large batches, a short linger. No compression: aiokafka's lz4 needs a
# package spikewatch does not depend on, and the worker's own producer sends uncompressed too.
PRODUCER_LINGER_MS = 10
PRODUCER_MAX_BATCH_BYTES = 1_048_576
PRODUCER_MAX_REQUEST_BYTES = 4_194_304
# Sends in flight before the loader waits for their acknowledgements.
LOAD_WINDOW_MESSAGES = 5_000
# The spike topic stamps records on append, so "arrived on the topic" is the broker's clock.
APPEND_TIME_CONFIG = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True, slots=True)
class RunTopics:
    """One worker's four topics, unique to a run."""

    exception_events: str
    accepted: str
    dead_letter: str
    spikes: str

    @classmethod
    def unique(cls, label: str) -> RunTopics:
        run = uuid.uuid4().hex[:8]
        return cls(
            f"bench-{label}-in-{run}",
            f"bench-{label}-accepted-{run}",
            f"bench-{label}-dlq-{run}",
            f"bench-{label}-spikes-{run}",
        )

    def all(self) -> list[str]:
        return [self.exception_events, self.accepted, self.dead_letter, self.spikes]


async def create_topics(
    bootstrap: str, names: Sequence[str], configs: Mapping[str, Mapping[str, str]] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=INPUT_PARTITIONS,
                    replication_factor=1,
                    topic_configs=dict((configs or {}).get(name, {})),
                )
                for name in names
            ]
        )
    finally:
        await admin.close()
    # The metadata names a leader before the broker serves the partition; producing right away
    # would meet NotLeaderForPartition retries. Listing offsets succeeds once it does.
    await _offsets_of(bootstrap, list(names))


async def create_run_topics(bootstrap: str, topics: RunTopics) -> None:
    await create_topics(bootstrap, topics.all(), {topics.spikes: APPEND_TIME_CONFIG})


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


def bulk_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=PRODUCER_LINGER_MS,
        max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        max_request_size=PRODUCER_MAX_REQUEST_BYTES,
    )


async def load(bootstrap: str, topic: str, events: Iterable[GeneratedEvent]) -> dict[int, int]:
    """Produce every event (key = project id) and wait for all acknowledgements; returns the
    number of events of each project."""
    per_project: dict[int, int] = {}
    producer = bulk_producer(bootstrap)
    await producer.start()
    try:
        pending = []
        for event in events:
            pending.append(await producer.send(topic, event.value, key=event.key))
            per_project[event.project_id] = per_project.get(event.project_id, 0) + 1
            if len(pending) >= LOAD_WINDOW_MESSAGES:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return per_project


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset of every partition of a bench topic: on a fresh topic, its message count."""
    offsets = await _offsets_of(bootstrap, [topic])
    return {tp.partition: offset for tp, offset in sorted(offsets.items())}


async def _offsets_of(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(
            [TopicPartition(topic, p) for topic in topics for p in range(INPUT_PARTITIONS)]
        )
    finally:
        await consumer.stop()
