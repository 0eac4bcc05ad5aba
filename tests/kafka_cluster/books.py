"""The books of a stream through the cluster under a fault: a producer that keeps sending at a
steady pace and notes which events the cluster acknowledged (acks=all), and what the input and
accepted topics and Redis hold afterwards.

What each input record must become is read back from the input topic itself, by offset: a send
retried across a broker's death may store an event twice, and each stored record is then an
input of its own, counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.redis_cleanup import forget_projects
from schemas.db import make_engine
from tests.reliability import ledger
from tests.reliability.kafka_io import StreamProducer, read_all
from tests.reliability.streams import Planned
from tests.worker.conftest import add_projects
from tests.worker.pipelines import new_project_ids


@contextlib.asynccontextmanager
async def project_of_its_own(
    database_url: str, redis: Redis
) -> AsyncIterator[tuple[int, AsyncEngine]]:
    """A project of the test's own stored in the database, and an engine on that database; the
    project's Redis keys are removed afterwards."""
    [project] = new_project_ids(1)
    engine = make_engine(database_url)
    try:
        await add_projects(engine, project)
        yield project, engine
    finally:
        await forget_projects(redis, [project])
        await engine.dispose()


@dataclass(slots=True)
class SteadyProduction:
    """Sends ``stream`` (with its ``events``, in the same order) ``chunk`` messages at a time,
    ``pause_seconds`` apart, in the background; a chunk whose send fails is noted, not retried."""

    producer: StreamProducer
    events: Sequence[dict[str, Any]]
    stream: Sequence[Planned]
    chunk: int
    pause_seconds: float
    acknowledged: list[str] = field(default_factory=list)
    unacknowledged: list[str] = field(default_factory=list)
    slowest_ack_seconds: float = 0.0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def finished(self) -> None:
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        for start in range(0, len(self.stream), self.chunk):
            uuids = [event["uuid"] for event in self.events[start : start + self.chunk]]
            sent_at = time.monotonic()
            try:
                await self.producer.send(self.stream[start : start + self.chunk])
            except KafkaError:
                self.unacknowledged += uuids
            else:
                self.acknowledged += uuids
            self.slowest_ack_seconds = max(self.slowest_ack_seconds, time.monotonic() - sent_at)
            await asyncio.sleep(self.pause_seconds)


@dataclass(frozen=True, slots=True)
class StoredInput:
    uuids: Counter[str]  # records per event uuid (more than one: a retried send stored twice)
    per_fingerprint: Counter[str]  # records per issue fingerprint

    @property
    def records(self) -> int:
        return sum(self.uuids.values())


async def stored_input(bootstrap: str, topic: str) -> StoredInput:
    uuids: Counter[str] = Counter()
    per_fingerprint: Counter[str] = Counter()
    for record in await read_all(bootstrap, topic):
        event = msgspec.json.decode(record.value)
        uuids[event["uuid"]] += 1
        per_fingerprint[event["properties"]["$exception_fingerprint"]] += 1
    return StoredInput(uuids, per_fingerprint)


async def forwarded_uuids(bootstrap: str, topic: str) -> Counter[str]:
    """How many times each event was forwarded (at least once each: forwarding may repeat)."""
    return Counter(
        msgspec.json.decode(record.value)["uuid"] for record in await read_all(bootstrap, topic)
    )


async def counted_in_redis(
    engine: AsyncEngine, redis: Redis, project_id: int, fingerprints: Sequence[str]
) -> dict[str, int]:
    """Each issue's events in all of its spike buckets in Redis."""
    ids = await ledger.issue_ids(engine, {(project_id, f) for f in fingerprints})
    return {
        fingerprint: await ledger.counted_in_redis(redis, project_id, issue_id)
        for (_, fingerprint), issue_id in ids.items()
    }


@contextlib.asynccontextmanager
async def steady_production(
    producer: StreamProducer,
    events: Sequence[dict[str, Any]],
    stream: Sequence[Planned],
    *,
    chunk: int,
    pause_seconds: float,
) -> Any:
    """A ``SteadyProduction`` running for the block; cancelled if the block fails."""
    production = SteadyProduction(producer, events, stream, chunk, pause_seconds)
    production.start()
    try:
        yield production
    finally:
        assert production._task is not None
        if not production._task.done():
            production._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await production._task
