"""Batches that arrive while a project's slot is being migrated to another master (the source
MIGRATING, the target IMPORTING, some keys on each side), processed by the real pipeline with
projects on all three masters. A call Redis refuses meanwhile (TRYAGAIN while the keys a script
names are split, ASK for a key already moved) is followed, not failed open: the batch waits for
the hand-over, or reads from the target under ASKING, and is counted exactly, once under replay.

Two tests are expected to fail (strict xfail) until counting.lua stops short of writing when its
slot is migrating: it touches keys it does not declare, which Redis refuses halfway through the
script on either side of a migration.

Each test hands the slot back to its first master before it ends, so the cluster is as it found
it for the tests after it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio.cluster import ClusterNode, RedisCluster
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.redis_keys import config_version_key, project_tag
from schemas.tables import SuppressionRule
from tests.redis_cluster.conftest import master_of
from tests.redis_cluster.test_worker_on_cluster import (
    FAIL_OPEN_METRIC,
    STREAM_OUTCOMES,
    by_project,
    issue_count,
)
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event, iso
from tests.worker.pipelines import INPUT_TOPIC, NOW, build_pipeline, messages
from tests.worker.test_count_and_limit_stage import configure, stream
from worker.counting import counting_watermark_key
from worker.outcomes import Outcome
from worker.redis_nodes import REFUSED_RETRY_DELAYS_SECONDS

pytestmark = pytest.mark.redis_cluster

# How long the migration keeps the batch waiting: more than redis-py's own TRYAGAIN retries
# (about 0.4 s), within spikewatch's (about 1.8 s in all).
HELD_SECONDS = 1.0
STREAM_LENGTH = len(STREAM_OUTCOMES)
F, S = Outcome.FORWARDED, Outcome.SUPPRESSED
CONFIG_FAIL_OPEN_METRIC = "spikewatch_redis_fail_open_total"
CONFIG_STAGE = {"stage": "config"}


def fail_opens() -> float:
    return REGISTRY.get_sample_value(FAIL_OPEN_METRIC) or 0.0


async def on(cluster: RedisCluster, node: ClusterNode, *command: Any) -> Any:
    return await cluster.execute_command(*command, target_nodes=node)


async def error_count(cluster: RedisCluster, node: ClusterNode, error: str) -> int:
    """How many times ``node`` answered with ``error`` (TRYAGAIN, ASK) since it started."""
    stats = await on(cluster, node, "INFO", "errorstats")
    return int(stats.get(f"errorstat_{error}", {}).get("count", 0))


@dataclass
class Migration:
    """One slot on its way from ``source`` to ``target``, driven step by step as
    ``redis-cli --cluster reshard`` drives it, behind the back of the client's slot cache."""

    cluster: RedisCluster
    slot: int
    source: ClusterNode
    target: ClusterNode

    async def open(self) -> None:
        source_id, target_id = await self._ids()
        await on(self.cluster, self.target, "CLUSTER SETSLOT", self.slot, "IMPORTING", source_id)
        await on(self.cluster, self.source, "CLUSTER SETSLOT", self.slot, "MIGRATING", target_id)

    async def move(self, *keys: str) -> None:
        await on(self.cluster, self.source, "MIGRATE", *self._to_target(), "KEYS", *keys)

    async def keys_left(self) -> list[str]:
        return await on(self.cluster, self.source, "CLUSTER GETKEYSINSLOT", self.slot, 1000)

    async def finish(self) -> None:
        """Move every key left, then give the slot to the target on every master."""
        while keys := await self.keys_left():
            await on(self.cluster, self.source, "MIGRATE", *self._to_target(), "KEYS", *keys)
        _, target_id = await self._ids()
        for node in self.cluster.get_primaries():
            await on(self.cluster, node, "CLUSTER SETSLOT", self.slot, "NODE", target_id)

    async def undo(self) -> None:
        """Whatever step the migration reached, the slot back on the source, keys and all."""
        await self.finish()
        back = Migration(self.cluster, self.slot, self.target, self.source)
        await back.open()
        await back.finish()

    def _to_target(self) -> list[Any]:
        # Host, port, no single key, database 0, a 5 s timeout; REPLACE only ever matters to
        # undo() after a failed test.
        return [self.target.host, self.target.port, "", 0, 5000, "REPLACE"]

    async def _ids(self) -> tuple[str, str]:
        source_id, target_id = [
            (await on(self.cluster, node, "CLUSTER MYID")).decode()
            for node in (self.source, self.target)
        ]
        return source_id, target_id


@pytest.fixture
async def migrations(cluster: RedisCluster) -> AsyncIterator[Callable[[int], Migration]]:
    """Call it with a project id for a migration of its slot to another master; undone after
    the test, whatever happened."""
    made: list[Migration] = []

    def migrate(project_id: int) -> Migration:
        source = cluster.get_node_from_key(project_tag(project_id))
        target = next(node for node in cluster.get_primaries() if node != source)
        made.append(Migration(cluster, cluster.keyslot(project_tag(project_id)), source, target))
        return made[-1]

    yield migrate
    for migration in made:
        await migration.undo()
        # A client that still routes the slot to where the test left it learns it back by MOVED.


@dataclass
class Streams:
    """stream()'s 13 events of each project, cut into batches at the same place for all."""

    projects: list[int]

    def batch(self, start: int, stop: int) -> list[Any]:
        payloads = [stream(project)[start:stop] for project in self.projects]
        # Offsets run on from batch to batch: a batch cut at ``start`` begins at offset
        # start * projects.
        return messages(
            *(p for per_project in payloads for p in per_project),
            first_offset=start * len(self.projects),
        )


async def configured(engine: AsyncEngine, projects: list[int]) -> Streams:
    await add_projects(engine, *projects)
    for project in projects:
        await configure(engine, project)
    return Streams(projects)


async def assert_counted_exactly(
    cluster: RedisCluster, projects: list[int], records: list[Any]
) -> None:
    """stream()'s counts on every project, from the records of its 13 events in stream order:
    6 ValueErrors (the first event's issue), 5 SyntaxErrors (the ninth's), no suppressed
    KeyError (the seventh's)."""
    for project in projects:
        mine = [r for r in records if r.project_id == project]
        assert len(mine) == STREAM_LENGTH
        value_error, key_error, syntax_error = (mine[n].issue_id for n in (0, 6, 8))
        assert await issue_count(cluster, project, value_error) == 6
        assert await issue_count(cluster, project, syntax_error) == 5
        assert await issue_count(cluster, project, key_error) == 0


async def test_a_batch_whose_project_keys_are_split_by_a_migration_waits_and_counts_once(
    engine: AsyncEngine,
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
    migrations: Callable[[int], Migration],
) -> None:
    projects = projects_on_masters(1)
    moving = projects[0]
    streams = await configured(engine, projects)
    pipeline = build_pipeline(engine, cluster)
    first = await pipeline.process(streams.batch(0, 4))
    migration = migrations(moving)
    fail_opens_before = fail_opens()
    tryagain_before = await error_count(cluster, migration.source, "TRYAGAIN")

    # The counting watermark is on the target, the rate-limit keys still on the source: the
    # project's script call names keys on both sides.
    await migration.open()
    await migration.move(counting_watermark_key(moving, INPUT_TOPIC, 0))
    started = time.monotonic()
    second_batch = asyncio.create_task(pipeline.process(streams.batch(4, STREAM_LENGTH)))
    await asyncio.sleep(HELD_SECONDS)
    held = not second_batch.done()
    tryagain_seen = await error_count(cluster, migration.source, "TRYAGAIN") - tryagain_before
    await migration.finish()
    second = await second_batch
    waited = time.monotonic() - started

    # The batch waited for the migration rather than failing the project open, then followed
    # the slot to its new master: every project has the single-node numbers.
    assert held, "the batch did not wait for the migration"
    assert tryagain_seen > 0
    assert HELD_SECONDS <= waited < HELD_SECONDS + sum(REFUSED_RETRY_DELAYS_SECONDS) + 2
    assert fail_opens() == fail_opens_before
    assert master_of(cluster, moving) == migration.target.name
    assert by_project(first + second) == {project: STREAM_OUTCOMES for project in projects}
    await assert_counted_exactly(cluster, projects, first + second)

    # The same batch again, by a worker that remembers nothing: counted nothing twice.
    replayed = await build_pipeline(engine, cluster).process(streams.batch(4, STREAM_LENGTH))
    assert [r.outcome for r in replayed] == [r.outcome for r in second]
    await assert_counted_exactly(cluster, projects, first + second)
    assert fail_opens() == fail_opens_before


@pytest.mark.xfail(
    strict=True,
    reason="counting.lua reads its history buckets, keys it does not declare, in one multi-key "
    "read; on the importing node some are missing, so the script stops there ('Script attempted "
    "to access a non local key'), after it counted and moved its watermarks: the project fails "
    "open for the batch",
)
async def test_a_batch_after_every_key_moved_but_before_the_hand_over_runs_on_the_target(
    engine: AsyncEngine,
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
    migrations: Callable[[int], Migration],
) -> None:
    projects = projects_on_masters(1)
    moving = projects[0]
    streams = await configured(engine, projects)
    pipeline = build_pipeline(engine, cluster)
    # Five ValueErrors, the fifth rate-limited: the project's replay log exists, so every key
    # its script call names exists, on the target once moved.
    first = await pipeline.process(streams.batch(0, 5))
    migration = migrations(moving)
    fail_opens_before = fail_opens()
    ask_before = await error_count(cluster, migration.source, "ASK")

    await migration.open()
    await migration.move(*await migration.keys_left())
    second = await pipeline.process(streams.batch(5, STREAM_LENGTH))
    replayed = await build_pipeline(engine, cluster).process(streams.batch(5, STREAM_LENGTH))
    asked = await error_count(cluster, migration.source, "ASK") - ask_before
    await migration.finish()

    # The source, still migrating the slot (only then does it answer ASK), redirected the
    # project's calls (its config version, its script) with ASK; the target ran them under
    # ASKING before it owned the slot; nothing failed open, and the
    # replay counted nothing twice. (Counts are read once the slot is handed over: the test's
    # own reads would meet redis-py's ASK handling, which this test is not about.)
    assert asked > 0
    assert fail_opens() == fail_opens_before
    assert by_project(first + second) == {project: STREAM_OUTCOMES for project in projects}
    assert [r.outcome for r in replayed] == [r.outcome for r in second]
    await assert_counted_exactly(cluster, projects, first + second)


@pytest.mark.xfail(
    strict=True,
    reason="counting.lua reads and writes keys it does not declare; on the source of a migration "
    "the first such key it lacks stops the script with 'Script attempted to access a non local "
    "key', after the counters it already incremented: the project fails open, partly counted",
)
async def test_a_batch_when_a_migration_has_moved_nothing_yet_is_counted_whole_and_once(
    engine: AsyncEngine,
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
    migrations: Callable[[int], Migration],
) -> None:
    projects = projects_on_masters(1)
    moving = projects[0]
    streams = await configured(engine, projects)
    pipeline = build_pipeline(engine, cluster)
    # As above: every key the project's script call names exists, here all still on the source.
    first = await pipeline.process(streams.batch(0, 5))
    migration = migrations(moving)
    fail_opens_before = fail_opens()

    await migration.open()
    second = await pipeline.process(streams.batch(5, STREAM_LENGTH))
    failed_open = fail_opens() - fail_opens_before
    await migration.finish()
    replayed = await build_pipeline(engine, cluster).process(streams.batch(5, STREAM_LENGTH))

    assert failed_open == 0
    assert by_project(first + second) == {project: STREAM_OUTCOMES for project in projects}
    assert [r.outcome for r in replayed] == [r.outcome for r in second]
    await assert_counted_exactly(cluster, projects, first + second)


async def test_a_config_change_read_during_a_migration_is_followed_by_ask(
    engine: AsyncEngine,
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
    migrations: Callable[[int], Migration],
) -> None:
    projects = projects_on_masters(1)
    moving = projects[0]
    await add_projects(engine, *projects)
    pipeline = build_pipeline(engine, cluster)

    def value_errors(first_offset: int) -> list[Any]:
        payloads = [
            encode(exception_event(p, error_type="ValueError", timestamp=iso(NOW)))
            for p in projects
        ]
        return messages(*payloads, first_offset=first_offset)

    first = await pipeline.process(value_errors(0))
    # A rule for the moving project, and its config version bumped as the API does; then
    # every key of its slot moves to the target, whose hand-over has not come yet.
    async with engine.begin() as connection:
        await connection.execute(
            insert(SuppressionRule),
            [
                {
                    "id": uuid.uuid4(),
                    "project_id": moving,
                    "order_key": 0,
                    "filters": {
                        "type": "AND",
                        "values": [{"key": "$exception_types", "value": "ValueError"}],
                    },
                }
            ],
        )
    await cluster.incr(config_version_key(moving))
    migration = migrations(moving)
    config_fail_opens = REGISTRY.get_sample_value(CONFIG_FAIL_OPEN_METRIC, CONFIG_STAGE) or 0.0
    ask_before = await error_count(cluster, migration.source, "ASK")
    await migration.open()
    await migration.move(*await migration.keys_left())
    # Two connections free to the target, as a busy worker has: redis-py 8.2 alone sends ASKING
    # on one and the command on the other, and never gets through.
    await asyncio.gather(*(on(cluster, migration.target, "PING") for _ in range(2)))

    second = await pipeline.process(value_errors(len(projects)))
    asked = await error_count(cluster, migration.source, "ASK") - ask_before
    await migration.finish()

    # The new version was read from the importing node, under ASKING, so the new rule applies
    # from this batch; the other projects' batch went on as before.
    assert asked > 0
    assert [r.outcome for r in first] == [F] * len(projects)
    assert {r.project_id: r.outcome for r in second} == {
        moving: S,
        **dict.fromkeys(projects[1:], F),
    }
    assert (
        REGISTRY.get_sample_value(CONFIG_FAIL_OPEN_METRIC, CONFIG_STAGE) or 0.0
    ) == config_fail_opens
