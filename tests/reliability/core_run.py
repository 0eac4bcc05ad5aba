"""What the crash-and-replay and rebalance tests share: the core stream set up on its own topics
and group, and the books they check once the workers have committed everything."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.db import make_engine
from tests.reliability import ledger
from tests.reliability.conftest import BUCKET_SECONDS, configure, topics_on
from tests.reliability.kafka_io import Position
from tests.reliability.streams import (
    ISSUE_LIMIT,
    PROJECT_LIMIT,
    Fate,
    Planned,
    StreamProjects,
    background,
    core_stream,
)
from tests.worker.operator_api import wait_for_room_in_bucket
from tests.worker.processes import Topics

# Room left in the day-long spike bucket, so the whole run counts into one.
BUCKET_ROOM_SECONDS = 240


@dataclass(frozen=True, slots=True)
class CoreRun:
    engine: AsyncEngine
    limits: dict[int, ledger.Limits]
    stream: list[Planned]
    topics: Topics
    group: str


@contextlib.asynccontextmanager
async def core_run(
    database_url: str,
    kafka_bootstrap: str,
    projects: StreamProjects,
    *,
    partitions: int,
    seed: int,
    background_events: int,
) -> AsyncIterator[CoreRun]:
    """The projects configured, the core stream and its background built, topics of its own with
    ``partitions`` partitions and a fresh group; topics and engine go away afterwards."""
    await wait_for_room_in_bucket(BUCKET_SECONDS, BUCKET_ROOM_SECONDS)
    engine = make_engine(database_url)
    await configure(engine, projects)
    stream = core_stream(projects, partitions, seed=seed)
    stream += background(projects, partitions, background_events)
    try:
        async with topics_on(kafka_bootstrap, partitions) as topics:
            yield CoreRun(
                engine=engine,
                limits={projects.limited: ledger.Limits(issue=ISSUE_LIMIT, project=PROJECT_LIMIT)},
                stream=stream,
                topics=topics,
                group=f"group-{uuid.uuid4().hex}",
            )
    finally:
        await engine.dispose()


async def assert_accounted_once(
    run: CoreRun,
    kafka_bootstrap: str,
    redis: Redis,
    projects: StreamProjects,
    sent: list[tuple[Fate, Position]],
) -> None:
    """Every input event ended exactly once; however often an event was forwarded it carried the
    same issue; the buckets hold one application of the stream; the burst spiked once."""
    expected = ledger.expect(sent, run.limits)
    observed = await ledger.observe(kafka_bootstrap, run.topics, redis, sent)
    assert ledger.unexplained(expected, observed) == {}
    totals = ledger.outcome_totals(expected, observed)
    assert totals.get(ledger.RATE_LIMITED_PROJECT, 0) == expected.project_limited
    assert sum(totals.values()) == len(run.stream)
    assert all(len(ids) == 1 for ids in observed.issue_ids_carried.values())

    await ledger.assert_single_application(redis, run.engine, expected, run.limits)
    burst = (projects.spiking, "burst")
    burst_issue = (await ledger.issue_ids(run.engine, {burst}))[burst]
    assert ledger.spike_issue_ids(observed) == [burst_issue]
    assert await ledger.spike_ids_stored(run.engine) == [observed.spikes[0].id]
