"""The worker's pipeline on Redis Cluster, with its projects spread over all three masters in the
same batches: suppression and rate limits with the single-node tests' exact numbers, a replayed
batch counted once, spikes published once under snooze locks on each master, one pipelined round
trip per master, a master that stops answering failing open only the projects it serves, a
master without the script getting it within the batch, and a resharded slot followed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio.cluster import ClusterNode, RedisCluster
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.redis_keys import project_tag
from schemas.tables import SpikeDetectionConfig
from tests.redis_cluster.conftest import master_of
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event, iso
from tests.worker.pipelines import (
    BUCKET_SECONDS,
    BUCKET_START,
    NOW,
    KeptMessages,
    build_pipeline,
    messages,
)
from tests.worker.test_count_and_limit_stage import configure, stream
from worker.counting import CountedEvent
from worker.outcomes import Outcome
from worker.rate_limits import RateLimitOutcome, RateLimits
from worker.redis_stage import RedisStage
from worker.snooze import snooze_key

pytestmark = pytest.mark.redis_cluster

F, S = Outcome.FORWARDED, Outcome.SUPPRESSED
RI, RP = Outcome.RATE_LIMITED_ISSUE, Outcome.RATE_LIMITED_PROJECT
# configure()'s limits (4 an hour per issue, 7 per project, KeyError suppressed) on stream().
STREAM_OUTCOMES = [F, F, F, F, RI, RI, S, S, F, F, F, RP, RI]
THRESHOLD, MULTIPLIER = 20, 3
FAIL_OPEN_METRIC = "spikewatch_redis_fail_open_events_total"


async def configured_stream(engine: AsyncEngine, projects: list[int]) -> list[Any]:
    """The projects stored with configure()'s limits and rule, and one batch of stream() each."""
    await add_projects(engine, *projects)
    for project in projects:
        await configure(engine, project)
    return messages(*(payload for project in projects for payload in stream(project)))


async def issue_count(cluster: RedisCluster, project_id: int, issue_id: uuid.UUID | None) -> int:
    value = await cluster.get(f"{project_tag(project_id)}:cnt:i:{issue_id}:{BUCKET_START}")
    return int(value or 0)


def by_project(records: list[Any]) -> dict[int, list[Outcome | None]]:
    outcomes: dict[int, list[Outcome | None]] = {}
    for record in records:
        outcomes.setdefault(record.project_id, []).append(record.outcome)
    return outcomes


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The node of every pipelined round trip the cluster client makes, in order."""
    trips: list[str] = []
    execute_pipeline = ClusterNode.execute_pipeline

    async def counted(node: ClusterNode, commands: Any) -> bool:
        trips.append(node.name)
        return await execute_pipeline(node, commands)

    monkeypatch.setattr(ClusterNode, "execute_pipeline", counted)
    yield trips


async def test_limits_and_suppression_give_the_single_node_numbers_on_every_master(
    engine: AsyncEngine, cluster: RedisCluster, projects_on_masters: Callable[[int], list[int]]
) -> None:
    projects = projects_on_masters(1)
    assert len({master_of(cluster, p) for p in projects}) == 3
    batch = await configured_stream(engine, projects)

    records = await build_pipeline(engine, cluster).process(batch)

    assert by_project(records) == {project: STREAM_OUTCOMES for project in projects}
    for project in projects:
        mine = [r for r in records if r.project_id == project]
        value_error, key_error, syntax_error = (mine[n].issue_id for n in (0, 6, 8))
        assert await issue_count(cluster, project, value_error) == 6
        assert await issue_count(cluster, project, syntax_error) == 5
        assert await issue_count(cluster, project, key_error) == 0


async def test_a_replayed_batch_counts_once_and_keeps_its_outcomes_on_every_master(
    engine: AsyncEngine, cluster: RedisCluster, projects_on_masters: Callable[[int], list[int]]
) -> None:
    projects = projects_on_masters(1)
    batch = await configured_stream(engine, projects)

    first = await build_pipeline(engine, cluster).process(batch)
    # Another worker after a rebalance: nothing in memory, the same offsets again.
    again = await build_pipeline(engine, cluster).process(batch)

    assert [r.outcome for r in again] == [r.outcome for r in first]
    for project in projects:
        mine = [r for r in first if r.project_id == project]
        assert await issue_count(cluster, project, mine[0].issue_id) == 6
        assert await issue_count(cluster, project, mine[8].issue_id) == 5


async def test_a_batch_over_three_masters_takes_one_round_trip_per_master_per_stage(
    engine: AsyncEngine,
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
    round_trips: list[str],
) -> None:
    projects = projects_on_masters(4)
    await add_projects(engine, *projects)
    pipeline = build_pipeline(engine, cluster)
    await pipeline.process(messages(encode(exception_event(projects[0]))))  # loads the scripts
    round_trips.clear()

    payloads = [encode(exception_event(project, timestamp=iso(NOW))) for project in projects]
    records = await pipeline.process(messages(*payloads, first_offset=1))

    assert {r.outcome for r in records} == {F}
    # Config versions, then counting and limits: each one pipeline per master, for 12 projects.
    masters = sorted(node.name for node in cluster.get_primaries())
    assert sorted(round_trips) == sorted(masters * 2)


async def test_bursts_on_every_master_spike_once_and_are_snoozed_there(
    engine: AsyncEngine, cluster: RedisCluster, projects_on_masters: Callable[[int], list[int]]
) -> None:
    projects = projects_on_masters(1)
    await add_projects(engine, *projects)
    async with engine.begin() as connection:
        await connection.execute(
            insert(SpikeDetectionConfig),
            [
                {
                    "project_id": project,
                    "threshold": THRESHOLD,
                    "multiplier": MULTIPLIER,
                    "snooze_duration_minutes": 10,
                }
                for project in projects
            ],
        )
    sent = KeptMessages()
    pipeline = build_pipeline(engine, cluster, sent=sent)
    offsets = iter(range(10_000))

    async def send(per_project: int, buckets_back: int = 0) -> None:
        timestamp = iso(NOW - buckets_back * BUCKET_SECONDS)
        payloads = [
            encode(exception_event(project, error_type="ValueError", timestamp=timestamp))
            for project in projects
            for _ in range(per_project)
        ]
        records = await pipeline.process(messages(*payloads, first_offset=next(offsets) * 1000))
        assert {r.outcome for r in records} == {F}

    # Two events in each of the eleven historical buckets: a baseline of 2.
    for back in range(11, 0, -1):
        await send(2, buckets_back=back)
    await send(THRESHOLD - 1)
    assert sent.spikes() == []
    await send(1)
    await send(5)  # still over: snoozed

    spikes = sent.spikes()
    assert sorted(spike.project_id for spike in spikes) == sorted(projects)
    assert {(s.current_bucket_value, s.computed_baseline) for s in spikes} == {(THRESHOLD, 2.0)}
    for spike in spikes:
        holder = await cluster.get(snooze_key(spike.project_id, spike.issue.id))
        assert holder == f"published:{spike.id}".encode()


async def test_a_master_that_stops_answering_fails_open_only_its_own_projects(
    engine: AsyncEngine, cluster: RedisCluster, projects_on_masters: Callable[[int], list[int]]
) -> None:
    projects = projects_on_masters(1)
    batch = await configured_stream(engine, projects)
    stalled, *healthy = projects
    pipeline = build_pipeline(engine, cluster)

    # The master stops answering (commands time out, each after a second, and once more on
    # retry) for less than the cluster takes to fail it over; nothing can end the pause early.
    master = cluster.get_node_from_key(project_tag(stalled))
    pause_seconds = 5
    await cluster.execute_command("CLIENT PAUSE", pause_seconds * 1000, "ALL", target_nodes=master)
    paused_until = time.monotonic() + pause_seconds
    try:
        records = await pipeline.process(batch)
    finally:
        await asyncio.sleep(max(paused_until - time.monotonic(), 0))

    outcomes = by_project(records)
    # Suppression needs no Redis; the limits of the stalled master's project let all through.
    assert outcomes[stalled] == [F] * 6 + [S] * 2 + [F] * 5
    assert {project: outcomes[project] for project in healthy} == {
        project: STREAM_OUTCOMES for project in healthy
    }


async def test_a_master_that_lost_its_scripts_gets_them_again_within_the_batch(
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
    round_trips: list[str],
) -> None:
    projects = projects_on_masters(2)
    stage = RedisStage(cluster, topic="in")
    limits = RateLimits(issue_value=2, issue_bucket_minutes=1)

    def batch(first_offset: int) -> dict[int, tuple[RateLimits, list[CountedEvent]]]:
        events = [CountedEvent("a", 0, first_offset + n, NOW) for n in range(3)]
        return {project: (limits, events) for project in projects}

    await stage.apply(batch(0), NOW)
    flushed = cluster.get_node_from_key(project_tag(projects[0]))
    await cluster.execute_command("SCRIPT FLUSH", target_nodes=flushed)
    round_trips.clear()

    result = await stage.apply(batch(3), NOW)

    assert result.redis_failed is False
    assert {p: r.outcomes for p, r in result.projects.items()} == {
        project: [RateLimitOutcome.RATE_LIMITED_ISSUE] * 3 for project in projects
    }
    # Refused with NOSCRIPT, then sent again with the script: two round trips there only.
    assert sorted(round_trips) == sorted([*(n.name for n in cluster.get_primaries()), flushed.name])


async def move_slot(
    cluster: RedisCluster, slot: int, source: ClusterNode, target: ClusterNode
) -> None:
    """Reshard one slot, keys and all, as ``redis-cli --cluster reshard`` does, behind the back of
    ``cluster``'s slot cache."""

    async def on(node: ClusterNode, *command: Any) -> Any:
        return await cluster.execute_command(*command, target_nodes=node)

    source_id, target_id = [(await on(n, "CLUSTER MYID")).decode() for n in (source, target)]
    await on(target, "CLUSTER SETSLOT", slot, "IMPORTING", source_id)
    await on(source, "CLUSTER SETSLOT", slot, "MIGRATING", target_id)
    while keys := await on(source, "CLUSTER GETKEYSINSLOT", slot, 100):
        await on(source, "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
    for node in cluster.get_primaries():
        await on(node, "CLUSTER SETSLOT", slot, "NODE", target_id)


async def test_a_slot_moved_to_another_master_is_followed_not_failed_open(
    engine: AsyncEngine, cluster: RedisCluster, projects_on_masters: Callable[[int], list[int]]
) -> None:
    project, *_ = projects_on_masters(1)
    await add_projects(engine, project)
    pipeline = build_pipeline(engine, cluster)
    payloads = [encode(exception_event(project, timestamp=iso(NOW))) for _ in range(6)]
    [first] = {r.issue_id for r in await pipeline.process(messages(*payloads))}
    slot = cluster.keyslot(project_tag(project))
    source = cluster.get_node_from_key(project_tag(project))
    target = next(node for node in cluster.get_primaries() if node != source)
    fail_opens_before = REGISTRY.get_sample_value(FAIL_OPEN_METRIC) or 0.0

    await move_slot(cluster, slot, source, target)
    try:
        moved = await pipeline.process(messages(*payloads, first_offset=6))
        replayed = await pipeline.process(messages(*payloads, first_offset=6))
        now_on = master_of(cluster, project)
        count = await issue_count(cluster, project, first)
    finally:
        await move_slot(cluster, slot, target, source)

    # MOVED was followed to the new master (the client learnt the move), with the watermarks
    # that came along: the replay counted nothing twice, and nothing failed open.
    assert now_on == target.name
    assert [r.outcome for r in moved + replayed] == [F] * 12
    assert count == 12
    assert (REGISTRY.get_sample_value(FAIL_OPEN_METRIC) or 0.0) == fail_opens_before
