"""Fixtures of the worker reliability tests: the worker tests' databases and Redis client, the
projects of a planned stream, worker processes with test-sized settings, and servers of our own
(a Kafka broker shared by this folder's tests that need one; each outage test makes its others).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from unittest import mock

import pytest
from redis.asyncio import Redis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.redis_cleanup import forget_projects
from schemas.tables import (
    ErrorTrackingSettings,
    Project,
    SpikeDetectionConfig,
    SuppressionRule,
)
from tests.reliability.streams import StreamProjects
from tests.support.own_servers import OwnKafkaBroker
from tests.worker.conftest import (  # noqa: F401  (fixtures used by the tests of this folder)
    postgres_database_url,
    redis_client,
    sqlite_url,
)
from tests.worker.pipelines import new_project_ids
from tests.worker.processes import Topics, WorkerProcess, create_topics, delete_topics

# A day-long spike bucket: a test's events and the worker's clock share one bucket unless the test
# runs across midnight UTC (tests that count on it wait for room first).
BUCKET_SECONDS = 86_400
# The group holds a dead member's partitions for its session timeout; a test that crashes workers
# (without static membership) shortens it so the survivors take over in seconds (RELIABILITY.md
# gives the production figures).
WORKER_TEST_SETTINGS = {
    "BUCKET_SIZE_SECONDS": str(BUCKET_SECONDS),
    "CONSUMER_SESSION_TIMEOUT_SECONDS": "10",
}
_TABLES = {
    "projects": Project,
    "error_tracking_settings": ErrorTrackingSettings,
    "error_tracking_suppression_rules": SuppressionRule,
    "error_tracking_spike_detection_config": SpikeDetectionConfig,
}


class Worker(WorkerProcess):
    """A worker process with extra settings in its environment; its pid, for /proc."""

    def __init__(self, *, settings_env: Mapping[str, str], **kwargs: object) -> None:
        # WorkerProcess hands its subprocess a copy of os.environ taken at start.
        with mock.patch.dict(os.environ, settings_env):
            super().__init__(**kwargs)  # type: ignore[arg-type]

    @property
    def pid(self) -> int:
        return self._process.pid

    async def consumed(self) -> int:
        return int((await self.metrics())["spikewatch_events_consumed_total"])


LaunchWorker = Callable[..., Worker]


@pytest.fixture
def launch_worker(tmp_path: pathlib.Path, redis_url: str) -> Iterator[LaunchWorker]:
    """Start a worker on a database, broker and topics (the shared Redis unless ``redis``
    names another); every one is stopped after the test."""
    started: list[Worker] = []

    def launch(
        database_url: str,
        bootstrap: str,
        topics: Topics,
        group: str,
        *,
        redis: str | None = None,
        settings_env: Mapping[str, str] = WORKER_TEST_SETTINGS,
        batch_max_events: int = 100,
    ) -> Worker:
        worker = Worker(
            settings_env=settings_env,
            database_url=database_url,
            kafka_bootstrap=bootstrap,
            redis_url=redis or redis_url,
            topics=topics,
            consumer_group=group,
            workdir=tmp_path,
            batch_max_events=batch_max_events,
        )
        started.append(worker)
        return worker

    yield launch
    for worker in started:
        worker.stop()


@asynccontextmanager
async def topics_on(bootstrap: str, partitions: int) -> AsyncIterator[Topics]:
    """Topics of the test's own on ``bootstrap``, deleted afterwards."""
    topics = Topics.unique()
    await create_topics(bootstrap, topics, partitions=partitions)
    try:
        yield topics
    finally:
        await delete_topics(bootstrap, topics)


@pytest.fixture
async def stream_projects(redis_client: Redis) -> AsyncIterator[StreamProjects]:  # noqa: F811
    limited, spiking, unknown = new_project_ids(3)
    yield StreamProjects(limited=limited, spiking=spiking, unknown=unknown)
    await forget_projects(redis_client, [limited, spiking])


async def configure(engine: AsyncEngine, projects: StreamProjects) -> None:
    async with engine.begin() as connection:
        for table, rows in projects.rows().items():
            await connection.execute(insert(_TABLES[table]), rows)


@pytest.fixture(scope="session")
async def own_kafka() -> AsyncIterator[OwnKafkaBroker]:
    """A broker of this folder's own (12 MB messages; the broker restart test crashes it)."""
    broker = OwnKafkaBroker()
    broker.start()
    try:
        await broker.wait_ready()
        yield broker
    finally:
        broker.remove()
