"""The cluster client as ``REDIS_CLUSTER=true`` builds it from ``REDIS_URL``: several nodes,
comma-separated, so that one node being down at start does not keep the worker or the API off
the cluster."""

from __future__ import annotations

import socket

import pytest
from redis.asyncio.cluster import RedisCluster

from worker.runtime import connect_redis

pytestmark = pytest.mark.redis_cluster


async def test_a_url_whose_first_node_is_down_finds_the_cluster_through_the_next(
    cluster_url: str,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = connect_redis(f"redis://127.0.0.1:{closed_port},{cluster_url}", cluster=True)
    assert isinstance(client, RedisCluster)
    try:
        await client.set("{p:0}:probe", "here", ex=10)
        assert await client.get("{p:0}:probe") == b"here"
        assert len(client.get_primaries()) == 3
    finally:
        await client.delete("{p:0}:probe")
        await client.aclose()
