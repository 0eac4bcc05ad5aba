"""Fixtures of the worker tests: fresh migrated databases with projects, Redis, project ids of each
test's own, and real worker processes that are always stopped after their test."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.redis_cleanup import forget_projects
from schemas.db import make_engine
from schemas.tables import Project
from tests.support.databases import database_url, fresh_database
from tests.worker.pipelines import new_project_ids
from tests.worker.processes import Topics, WorkerProcess

__all__ = ["database_url"]  # the fixture of tests.support.databases, for both database kinds


async def add_projects(engine: AsyncEngine, *project_ids: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(Project), [{"id": pid, "name": f"project {pid}"} for pid in project_ids]
        )


async def stored_project(url: str) -> int:
    """A project id of the test's own, stored in the database at ``url``."""
    [project] = new_project_ids(1)
    engine = make_engine(url)
    try:
        await add_projects(engine, project)
    finally:
        await engine.dispose()
    return project


@pytest.fixture
async def sqlite_url(tmp_path: pathlib.Path) -> AsyncIterator[str]:
    async with fresh_database("sqlite", tmp_path, None) as url:
        yield url


@pytest.fixture
async def postgres_database_url(tmp_path: pathlib.Path, postgres_url: str) -> AsyncIterator[str]:
    async with fresh_database("postgresql", tmp_path, postgres_url) as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def project_ids(redis_client: Redis) -> AsyncIterator[list[int]]:
    """Three project ids of this test alone; their Redis keys are removed afterwards."""
    ids = new_project_ids(3)
    yield ids
    await forget_projects(redis_client, ids)


@pytest.fixture
def start_worker(
    tmp_path: pathlib.Path, kafka_bootstrap: str, redis_url: str
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a worker process on a database and topics (and the shared Redis unless ``redis``
    names another); every one is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(
        database_url: str,
        topics: Topics,
        consumer_group: str,
        entry_point: str = "faust",
        *,
        redis: str | None = None,
    ) -> WorkerProcess:
        worker = WorkerProcess(
            entry_point=entry_point,
            database_url=database_url,
            kafka_bootstrap=kafka_bootstrap,
            redis_url=redis or redis_url,
            topics=topics,
            consumer_group=consumer_group,
            workdir=tmp_path,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
