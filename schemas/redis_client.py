"""The Redis client of the worker and the API: a single Redis, or Redis Cluster when the
``REDIS_CLUSTER`` setting says so. Both sides build theirs here so they never disagree on which.

Every key of a project carries its hash tag (``schemas.redis_keys``), so whatever one project
needs lives on one cluster node; nothing here routes keys itself, redis-py's cluster client does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

RedisClient = Redis | RedisCluster

# What an unavailable Redis raises: a node's own errors, or, from the cluster client, a topology
# with slots no reachable node serves (RedisClusterException is not a RedisError).
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def make_redis(
    url: str, *, cluster: bool, timeout_seconds: float, retries: int | None = None
) -> RedisClient:
    """A client that gives up on an unanswering node after ``timeout_seconds``, retrying a
    failed command ``retries`` times at once (``None``: redis-py's own retries, with backoff).

    On Redis Cluster ``url`` names one or more of its nodes, comma-separated: the client learns
    the rest from the first that answers.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
    }
    if retries is not None:
        options["retry"] = Retry(NoBackoff(), retries)
    if not cluster:
        return Redis.from_url(url, **options)
    first, *others = (part.strip() for part in url.split(","))
    seeds = [_cluster_node(other) for other in others]
    return RedisCluster.from_url(first, startup_nodes=seeds, **options)


def _cluster_node(url: str) -> ClusterNode:
    parts = urlsplit(url)
    return ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379)
