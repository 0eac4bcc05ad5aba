"""Redis crashes (``kill -9``) and later hangs (SIGSTOP) under a running worker; it keeps its data
(append-only file), as a production Redis does. While Redis is away the worker fails open: it
forwards everything, unlimited and uncounted, and says so in its metrics. Once Redis is back the
buckets it kept apply again from where they were: an issue that used up its limit before the crash
stays limited after it, and counting resumes without counting anything twice.

(tests/worker/test_worker_redis_outage.py covers a Redis that comes back empty.)"""

from __future__ import annotations

import uuid

import msgspec
import pytest
from redis.asyncio import Redis
from sqlalchemy import insert

from schemas.db import make_engine
from schemas.tables import ErrorTrackingSettings
from tests.reliability import ledger
from tests.reliability.conftest import LaunchWorker
from tests.reliability.kafka_io import StreamProducer, read_all, wait_until_committed
from tests.reliability.streams import LIMIT_BUCKET_MINUTES, Planned
from tests.support.own_servers import OwnRedis
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event
from tests.worker.pipelines import new_project_ids
from tests.worker.processes import Topics, create_topics, delete_topics, outcome_counts

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

ISSUE_LIMIT = 5
WAVE = 8
FAIL_OPEN_EVENTS = "spikewatch_redis_fail_open_events_total"
WAVE_TIMEOUT_SECONDS = 60


async def test_redis_crashing_and_hanging_fails_open_and_its_kept_buckets_apply_once_back(
    sqlite_url: str,
    kafka_bootstrap: str,
    persistent_redis: OwnRedis,
    launch_worker: LaunchWorker,
) -> None:
    [project] = new_project_ids(1)
    engine = make_engine(sqlite_url)
    await add_projects(engine, project)
    async with engine.begin() as connection:
        await connection.execute(
            insert(ErrorTrackingSettings),
            [
                {
                    "project_id": project,
                    "per_issue_rate_limit_value": ISSUE_LIMIT,
                    "per_issue_rate_limit_bucket_size_minutes": LIMIT_BUCKET_MINUTES,
                }
            ],
        )
    redis = Redis.from_url(persistent_redis.url)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    group = f"group-{uuid.uuid4().hex}"
    try:
        worker = launch_worker(
            sqlite_url, kafka_bootstrap, topics, group, redis=persistent_redis.url
        )
        async with StreamProducer(kafka_bootstrap, topics.exception_events) as producer:

            async def wave() -> list[str]:
                """A wave of one issue, processed and committed before the next fault."""
                events = [
                    exception_event(project, **{"$exception_fingerprint": "steady"})
                    for _ in range(WAVE)
                ]
                await producer.send(Planned(0, encode(event)) for event in events)
                await wait_until_committed(
                    kafka_bootstrap,
                    group,
                    producer.end_offsets(),
                    timeout_seconds=WAVE_TIMEOUT_SECONDS,
                    workers=[worker],
                )
                return [event["uuid"] for event in events]

            before = await wave()
            persistent_redis.crash()
            while_down = await wave()
            persistent_redis.start()
            await persistent_redis.wait_ready()
            await wave()
            persistent_redis.freeze()
            try:
                while_hung = await wave()
            finally:
                persistent_redis.thaw()
            await wave()

        forwarded = [
            msgspec.json.decode(record.value)["uuid"]
            for record in await read_all(kafka_bootstrap, topics.accepted)
        ]
        # The bucket emptied before the crash stayed empty after it: nothing of the waves after
        # the restart went through, while everything during the outages did (fail open).
        assert forwarded == before[:ISSUE_LIMIT] + while_down + while_hung
        assert worker.running
        samples = await worker.metrics()
        assert samples[FAIL_OPEN_EVENTS] == 2 * WAVE
        assert outcome_counts(samples) == {
            "forwarded": ISSUE_LIMIT + 2 * WAVE,
            "suppressed": 0,
            "rate_limited_issue": 3 * WAVE - ISSUE_LIMIT,
            "rate_limited_project": 0,
            "dead_lettered": 0,
        }
        # Counted once each: the three waves Redis saw, none of the two it missed.
        issue_id = (await ledger.issue_ids(engine, {(project, "steady")}))[(project, "steady")]
        assert await ledger.counted_in_redis(redis, project, issue_id) == 3 * WAVE
    finally:
        await delete_topics(kafka_bootstrap, topics)
        await redis.aclose()
        await engine.dispose()
