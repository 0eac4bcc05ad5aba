"""Fixtures of the Redis Cluster tests: the local cluster of ``scripts/services.sh up
redis-cluster``, a client of it as the worker builds one, and project ids placed on its masters.

Without ``TEST_REDIS_CLUSTER_URL`` these tests skip, saying how to start the cluster
(``scripts/test.sh`` always does); with it set, a cluster that does not answer fails them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
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


async def cluster_health(url: str) -> str | None:
    """None when the cluster is whole again: every node it lists answers and sees all 16384
    slots served, three masters each with one replica that is connected, linked and not
    syncing; otherwise the first thing that is not so."""
    first = urlsplit(url.split(",")[0].strip())
    try:
        async with Redis(host=first.hostname or "127.0.0.1", port=first.port or 6379) as seed:
            listing = (await seed.execute_command("CLUSTER", "NODES")).decode()
    except RedisError as exc:
        return f"{first.netloc} does not answer: {exc}"
    nodes = [line.split() for line in listing.splitlines() if line.strip()]
    if problems := [n[1] for n in nodes if "fail" in n[2] or n[7] != "connected"]:
        return f"nodes failed or disconnected: {problems}"
    masters = [n for n in nodes if "master" in n[2]]
    replicas = [n for n in nodes if "slave" in n[2]]
    if (len(masters), len(replicas)) != (MASTERS, MASTERS):
        return f"{len(masters)} masters and {len(replicas)} replicas"
    for node in nodes:
        host, port = node[1].split("@")[0].rsplit(":", 1)
        try:
            async with Redis(host=host, port=int(port), decode_responses=True) as client:
                info = await client.execute_command("CLUSTER", "INFO")
                replication = await client.info("replication")
        except RedisError as exc:
            return f"{host}:{port} does not answer: {exc}"
        if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
            return f"{host}:{port} sees the cluster as {info.split()[:3]}"
        if replication["role"] == "master":
            replica = replication.get("slave0", {})
            if replication["connected_slaves"] != 1 or replica.get("state") != "online":
                return f"master {host}:{port} has no replica online: {replica}"
        elif replication["master_link_status"] != "up" or replication["master_sync_in_progress"]:
            return f"replica {host}:{port} is not in sync"
    return None


async def wait_until_healthy(url: str, timeout_seconds: float = 30) -> float:
    """Wait until ``cluster_health`` finds nothing missing; the seconds that took."""
    started = time.monotonic()
    while (problem := await cluster_health(url)) is not None:
        assert time.monotonic() - started < timeout_seconds, f"the cluster is not whole: {problem}"
        await asyncio.sleep(0.2)
    return time.monotonic() - started
