"""The pipeline on a real database and Redis (no Kafka): every event ends in exactly one outcome,
an event that breaks a stage is dead-lettered alone, projects come and go with their config
version, and outages are waited out instead of losing events."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.db import make_engine
from schemas.events import DeadLetterReason
from schemas.migrate import upgrade
from schemas.redis_keys import config_version_key
from schemas.tables import Issue, Project
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event
from tests.worker.pipelines import FakeClock, build_pipeline, messages
from worker.config import UNKNOWN_PROJECT_RECHECK_SECONDS, ProjectConfigCache
from worker.outcomes import Outcome

pytestmark = pytest.mark.redis


async def test_every_event_of_a_batch_ends_in_exactly_one_outcome(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    known, missing, _ = project_ids
    await add_projects(engine, known)
    pipeline = build_pipeline(engine, redis_client)

    records = await pipeline.process(
        messages(
            encode(exception_event(known)),
            b"not json",
            encode(exception_event(missing)),
            encode(exception_event(known)),
        )
    )

    assert [(r.source.offset, r.outcome) for r in records] == [
        (0, Outcome.FORWARDED),
        (1, Outcome.DEAD_LETTERED),
        (2, Outcome.DEAD_LETTERED),
        (3, Outcome.FORWARDED),
    ]
    assert [r.dead_letter.reason for r in records if r.dead_letter] == [
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.UNKNOWN_PROJECT,
    ]
    assert records[2].dead_letter.error == f"project {missing} does not exist"
    assert records[0].issue_id == records[3].issue_id is not None


async def test_an_event_that_breaks_a_stage_is_dead_lettered_alone(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    surviving, vanishing, _ = project_ids
    await add_projects(engine, surviving, vanishing)
    pipeline = build_pipeline(engine, redis_client)
    await pipeline.process(messages(encode(exception_event(vanishing))))
    # Deleted behind the worker's back (no config version bump): its cached config says it
    # exists, so creating its new issue violates the foreign key.
    async with engine.begin() as connection:
        await connection.execute(delete(Project).where(Project.id == vanishing))

    records = await pipeline.process(
        messages(
            encode(exception_event(surviving)),
            encode(exception_event(vanishing, error_type="KeyError")),
            encode(exception_event(surviving, error_type="KeyError")),
        )
    )

    assert [r.outcome for r in records] == [
        Outcome.FORWARDED,
        Outcome.DEAD_LETTERED,
        Outcome.FORWARDED,
    ]
    assert records[1].dead_letter.reason is DeadLetterReason.PROCESSING_ERROR
    assert records[1].dead_letter.error.startswith("IntegrityError: ")
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(Issue)) == 2


async def test_a_project_created_after_its_first_events_is_known_within_a_second(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    late, _, _ = project_ids
    clock = FakeClock()
    configs = ProjectConfigCache(engine, redis_client, clock=clock)
    assert await configs.configs_for([late]) == {}

    await add_projects(engine, late)
    clock.now += UNKNOWN_PROJECT_RECHECK_SECONDS / 2
    assert await configs.configs_for([late]) == {}  # not looked up again so soon

    clock.now += UNKNOWN_PROJECT_RECHECK_SECONDS / 2
    assert list(await configs.configs_for([late])) == [late]


async def test_a_config_version_bump_reloads_only_that_project(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    bumped, untouched, _ = project_ids
    await add_projects(engine, bumped, untouched)
    configs = ProjectConfigCache(engine, redis_client, clock=FakeClock())
    await configs.refresh([bumped, untouched])
    assert set(await configs.configs_for([bumped, untouched])) == {bumped, untouched}

    async with engine.begin() as connection:
        await connection.execute(delete(Project).where(Project.id.in_([bumped, untouched])))
    await configs.refresh([bumped, untouched])
    assert set(await configs.configs_for([bumped, untouched])) == {bumped, untouched}  # cached

    await redis_client.incr(config_version_key(bumped))
    await configs.refresh([bumped, untouched])
    assert set(await configs.configs_for([bumped, untouched])) == {untouched}


async def test_without_redis_the_cached_configs_are_kept_and_the_fail_open_is_counted(
    engine: AsyncEngine, project_ids: list[int]
) -> None:
    known, _, _ = project_ids
    await add_projects(engine, known)
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    configs = ProjectConfigCache(engine, unreachable, clock=FakeClock())
    assert set(await configs.configs_for([known])) == {known}

    def fail_opens() -> float:
        return (
            REGISTRY.get_sample_value("spikewatch_redis_fail_open_total", {"stage": "config"})
            or 0.0
        )

    before = fail_opens()
    await configs.refresh([known])

    assert fail_opens() == before + 1
    assert set(await configs.configs_for([known])) == {known}
    await unreachable.aclose()


async def test_a_database_that_is_not_ready_is_waited_for_instead_of_losing_events(
    tmp_path: pathlib.Path, redis_client: Redis, project_ids: list[int]
) -> None:
    known, _, _ = project_ids
    # Not migrated yet: every query fails with "no such table" until the migration runs.
    late, ready = tmp_path / "late.db", tmp_path / "ready.db"
    engine = make_engine(f"sqlite+aiosqlite:///{late}")
    ready_engine = make_engine(f"sqlite+aiosqlite:///{ready}")
    try:
        pipeline = build_pipeline(engine, redis_client)
        processing = asyncio.create_task(pipeline.process(messages(encode(exception_event(known)))))
        await asyncio.sleep(1.0)
        assert not processing.done()

        # Migrated and given its project elsewhere, then copied in at once: a retry landing
        # between the migration and the project's insert would rightly find no such project.
        await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{ready}")
        await add_projects(ready_engine, known)
        await asyncio.to_thread(_copy_database, ready, late)
        [record] = await asyncio.wait_for(processing, timeout=30)
    finally:
        await engine.dispose()
        await ready_engine.dispose()

    assert record.outcome is Outcome.FORWARDED
    assert record.issue_id is not None


def _copy_database(source: pathlib.Path, target: pathlib.Path) -> None:
    """SQLite's online backup: readers of ``target`` see all of ``source`` or none of it."""
    origin, destination = sqlite3.connect(source), sqlite3.connect(target)
    try:
        origin.backup(destination)
    finally:
        origin.close()
        destination.close()
