"""The Kafka broker is killed (``kill -9``) under a running worker mid-stream and started again:
the worker reconnects on its own and catches up; every event is forwarded, none twice counted.

The broker is one of this folder's own: the shared broker on 19092 is never restarted.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from redis.asyncio import Redis

from bench.redis_cleanup import forget_projects
from schemas.db import make_engine
from tests.reliability import ledger
from tests.reliability.conftest import LaunchWorker, topics_on
from tests.reliability.kafka_io import StreamProducer, read_all, wait_until_committed
from tests.reliability.streams import chunks, issue_events
from tests.support.own_servers import OwnKafkaBroker
from tests.worker.conftest import add_projects
from tests.worker.pipelines import new_project_ids
from tests.worker.processes import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]

PARTITIONS = 2
EVENTS = 1_500
ISSUES = 10
RESTART_AFTER_EVENTS = 400


async def test_a_broker_killed_mid_stream_is_reconnected_to_and_nothing_is_lost(
    sqlite_url: str,
    own_kafka: OwnKafkaBroker,
    redis_client: Redis,
    launch_worker: LaunchWorker,
) -> None:
    [project] = new_project_ids(1)
    engine = make_engine(sqlite_url)
    await add_projects(engine, project)
    events, stream = issue_events(project, EVENTS, ISSUES, PARTITIONS)
    bootstrap = own_kafka.bootstrap
    group = f"group-{uuid.uuid4().hex}"
    try:
        async with (
            topics_on(bootstrap, PARTITIONS) as topics,
            StreamProducer(bootstrap, topics.exception_events) as producer,
        ):
            worker = launch_worker(sqlite_url, bootstrap, topics, group)

            async def produce_steadily() -> None:
                for chunk in chunks(stream, 50):
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)

            production = asyncio.create_task(produce_steadily())
            await worker.wait_until_serving()

            async def mid_stream() -> bool:
                return await worker.consumed() >= RESTART_AFTER_EVENTS

            await wait_for("the stream to flow", mid_stream, timeout_seconds=60, workers=[worker])
            own_kafka.crash()
            own_kafka.start()
            await own_kafka.wait_ready()
            await production
            await wait_until_committed(
                bootstrap, group, producer.end_offsets(), timeout_seconds=180, workers=[worker]
            )
            assert worker.running
            accepted = await read_all(bootstrap, topics.accepted)
            dead = await read_all(bootstrap, topics.dead_letter)

        forwarded = {msgspec.json.decode(record.value)["uuid"] for record in accepted}
        assert forwarded == {event["uuid"] for event in events}
        assert dead == []
        ids = await ledger.issue_ids(engine, {(project, f"issue-{n}") for n in range(ISSUES)})
        assert {
            fingerprint: await ledger.counted_in_redis(redis_client, project, issue_id)
            for (_, fingerprint), issue_id in ids.items()
        } == {f"issue-{n}": EVENTS // ISSUES for n in range(ISSUES)}
    finally:
        await forget_projects(redis_client, [project])
        await engine.dispose()
