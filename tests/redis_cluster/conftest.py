"""Fixtures of the Redis Cluster tests: the local cluster of ``scripts/services.sh up
redis-cluster``, a client of it as the worker builds one, and project ids placed on its masters.

Without ``TEST_REDIS_CLUSTER_URL`` these tests skip, saying how to start the cluster
(``scripts/test.sh`` always does); with it set, a cluster that does not answer fails them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio.cluster import RedisCluster
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.redis_cleanup import forget_projects
from schemas.db import make_engine
from schemas.redis_keys import project_tag
from tests.worker.conftest import sqlite_url, start_worker
from tests.worker.pipelines import new_project_ids
from worker.runtime import connect_redis

# The worker tests' fixtures: a fresh migrated SQLite database, worker processes stopped after.
__all__ = ["sqlite_url", "start_worker"]

MASTERS = 3


@pytest.fixture(scope="session")
def cluster_url() -> str:
    url = os.environ.get("TEST_REDIS_CLUSTER_URL")
    if not url:
        pytest.skip(
            "TEST_REDIS_CLUSTER_URL is not set: start the local Redis Cluster with "
            "`bash scripts/services.sh up redis-cluster` and `source .services/env`"
        )
    return url


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """The database beside the cluster: its kind does not matter here, so SQLite only."""
    engine = make_engine(sqlite_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A client of the cluster, built as the worker builds its own (REDIS_CLUSTER=true)."""
    client = connect_redis(cluster_url, cluster=True)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    masters = client.get_primaries()
    assert len(masters) == MASTERS, f"expected {MASTERS} masters, the cluster has {masters}"
    yield client
    await client.aclose()


def master_of(cluster: RedisCluster, project_id: int) -> str:
    """The name (host:port) of the master that serves the project's keys."""
    return cluster.get_node_from_key(project_tag(project_id)).name


@pytest.fixture
async def projects_on_masters(cluster: RedisCluster) -> AsyncIterator[Callable[[int], list[int]]]:
    """Call it with n for n fresh project ids on each master: ids[i] lives on master i % 3. Every
    key of them is removed after the test."""
    issued: list[int] = []

    def place(per_master: int) -> list[int]:
        by_master: dict[str, list[int]] = {node.name: [] for node in cluster.get_primaries()}
        for project_id in new_project_ids(100 * per_master):
            placed = by_master[master_of(cluster, project_id)]
            if len(placed) < per_master:
                placed.append(project_id)
            if all(len(ids) == per_master for ids in by_master.values()):
                break
        rounds = zip(*by_master.values(), strict=True)
        ids = [project_id for round_ in rounds for project_id in round_]
        assert len(ids) == per_master * MASTERS, "could not place projects on every master"
        issued.extend(ids)
        return ids

    yield place
    await forget_projects(cluster, issued)
