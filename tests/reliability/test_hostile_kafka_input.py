"""Hostile messages on the input topic, through a real worker on PostgreSQL: invalid UTF-8, JSON
bombs, 10 MB messages, 100,000 frames, huge strings, a wrong type in every field, unknown and
impossible projects. Each is dead-lettered with its reason (or, where it is a valid event after
all, forwarded), the worker stays alive and keeps consuming, and its memory stays bounded.

10 MB messages need a broker that takes them: this folder's own broker accepts 12 MB.
"""

from __future__ import annotations

import uuid

import msgspec
import pytest
from redis.asyncio import Redis

from bench import proc
from bench.redis_cleanup import forget_projects
from schemas.db import make_engine
from schemas.events import DeadLetter
from tests.reliability.conftest import LaunchWorker, topics_on
from tests.reliability.hostile import FORWARDED, MEGABYTE, Hostile, hostile_messages
from tests.reliability.kafka_io import StreamProducer, read_all, wait_until_committed
from tests.reliability.streams import Planned
from tests.support.own_servers import OwnKafkaBroker
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event
from tests.worker.pipelines import new_project_ids

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(300)]

PARTITIONS = 2
PASSES = 3
# Messages of up to 10 MB pass through the consumer, the decoder and the DLQ producer: the worker
# may grow by this much in all (it settled ~180 MB above its start when measured) ...
RSS_GROWTH_LIMIT_BYTES = 250 * MEGABYTE
# ... and by the last pass it must have stopped growing: memory is bounded by the largest
# message, not by how many hostile messages came (measured: +34, +18, then +0 MB per pass).
LAST_PASS_GROWTH_LIMIT_BYTES = 30 * MEGABYTE


async def test_hostile_messages_are_dead_lettered_with_their_reason_and_the_worker_lives_on(
    postgres_database_url: str,
    own_kafka: OwnKafkaBroker,
    redis_client: Redis,
    launch_worker: LaunchWorker,
) -> None:
    project, unknown = new_project_ids(2)
    engine = make_engine(postgres_database_url)
    await add_projects(engine, project)
    await engine.dispose()
    bootstrap = own_kafka.bootstrap
    group = f"group-{uuid.uuid4().hex}"
    planned: list[Hostile] = []
    try:
        async with topics_on(bootstrap, PARTITIONS) as topics:
            worker = launch_worker(postgres_database_url, bootstrap, topics, group)
            await worker.wait_until_serving()
            rss_at_start = proc.resident_bytes(worker.pid)
            peaks = []
            async with StreamProducer(bootstrap, topics.exception_events) as producer:
                for _ in range(PASSES):
                    # Valid events around the hostile ones: the stream flows on past them all.
                    one_pass = [*_valid(project, 5), *hostile_messages(project, unknown)]
                    one_pass += _valid(project, 5)
                    await producer.send(
                        Planned(n % PARTITIONS, message.value, key=b"hostile")
                        for n, message in enumerate(one_pass)
                    )
                    planned += one_pass
                    await wait_until_committed(
                        bootstrap,
                        group,
                        producer.end_offsets(),
                        timeout_seconds=120,
                        workers=[worker],
                    )
                    peaks.append(proc.peak_resident_bytes(worker.pid))
            assert worker.running
            letters = [
                msgspec.json.decode(record.value, type=DeadLetter)
                for record in await read_all(bootstrap, topics.dead_letter)
            ]
            forwarded = [
                msgspec.json.decode(record.value)["uuid"]
                for record in await read_all(bootstrap, topics.accepted)
            ]
    finally:
        await forget_projects(redis_client, [project])

    fate_at = {(letter.partition, letter.offset): letter.reason.value for letter in letters}
    position_of = {
        document.get("uuid"): position
        for message, (_, position) in zip(planned, producer.sent, strict=True)
        if (document := _document(message.value)) is not None
    }
    for event_uuid in forwarded:
        fate_at[position_of[event_uuid]] = FORWARDED
    observed = [
        (message.name, fate_at.get(position, "lost"))
        for message, (_, position) in zip(planned, producer.sent, strict=True)
    ]
    assert observed == [(message.name, message.fate) for message in planned]
    # Nothing twice: one output message per input message.
    assert len(letters) + len(forwarded) == len(planned)
    assert peaks[-1] - rss_at_start < RSS_GROWTH_LIMIT_BYTES, (rss_at_start, peaks)
    assert peaks[-1] - peaks[-2] < LAST_PASS_GROWTH_LIMIT_BYTES, (rss_at_start, peaks)


def _valid(project_id: int, count: int) -> list[Hostile]:
    return [
        Hostile("valid", encode(exception_event(project_id, value=f"valid {n}")), FORWARDED)
        for n in range(count)
    ]


def _document(value: bytes | None) -> dict[str, object] | None:
    if value is None:
        return None
    try:
        document = msgspec.json.decode(value)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None
