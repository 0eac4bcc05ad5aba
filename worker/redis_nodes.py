"""Pipelined calls grouped by the Redis node that serves them: one round trip per node, all nodes
at once. On a single Redis that is one pipeline; on Redis Cluster each call goes to the node that
owns its key's slot.

A node that fails fails only its own calls: the caller gets that node's error in their place and
fails open for them, while the calls of the other nodes go through. A redirection (MOVED, ASK)
during resharding or failover is not a failure: redis-py's cluster pipeline follows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import SlotNotCoveredError

from schemas.redis_client import REDIS_UNAVAILABLE, RedisClient

AnyPipeline = Pipeline | ClusterPipeline
# Queues the commands of call ``index`` (any number of them) on the pipeline of its node.
QueueCall = Callable[[AnyPipeline, int], None]
# One call's replies, in the order it queued its commands; or the error that failed its node.
CallResult = list[Any] | Exception


async def node_groups(redis: RedisClient, keys: Sequence[str]) -> list[list[int]]:
    """The indices of ``keys`` grouped by the node that serves each key."""
    if not keys:
        return []
    if not isinstance(redis, RedisCluster):
        return [list(range(len(keys)))]
    # Learns the topology on first use, and again after an error asked for it.
    await redis.initialize()
    groups: dict[str | None, list[int]] = {}
    for index, key in enumerate(keys):
        try:
            node: str | None = redis.get_node_from_key(key).name
        except SlotNotCoveredError:
            # No node serves the slot now (a failover under way): its pipeline fails alone.
            node = None
        groups.setdefault(node, []).append(index)
    return list(groups.values())


async def pipelined_by_node(
    redis: RedisClient, keys: Sequence[str], queue: QueueCall
) -> list[CallResult]:
    """Make call ``i`` (queued by ``queue(pipe, i)``) on the node of ``keys[i]``; per call, its
    replies (a command's own error among them, as an exception) or its node's error."""
    try:
        groups = await node_groups(redis, keys)
    except REDIS_UNAVAILABLE as exc:
        return [exc] * len(keys)
    outcomes = await asyncio.gather(
        *(_pipelined(redis, group, queue) for group in groups), return_exceptions=True
    )
    results: list[CallResult] = [[] for _ in keys]
    for group, outcome in zip(groups, outcomes, strict=True):
        if isinstance(outcome, REDIS_UNAVAILABLE):
            for index in group:
                results[index] = outcome
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            for index, replies in zip(group, outcome, strict=True):
                results[index] = replies
    return results


async def _pipelined(
    redis: RedisClient, indices: Sequence[int], queue: QueueCall
) -> list[list[Any]]:
    async with redis.pipeline(transaction=False) as pipe:
        bounds = []
        for index in indices:
            start = len(pipe)
            queue(pipe, index)
            bounds.append((start, len(pipe)))
        replies = await pipe.execute(raise_on_error=False)
    return [replies[start:end] for start, end in bounds]
