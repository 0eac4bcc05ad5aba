"""Pipelined calls grouped by the Redis node that serves them: one round trip per node, all nodes
at once. On a single Redis that is one pipeline; on Redis Cluster each call goes to the node that
owns its key's slot.

A node that fails fails only its own calls: the caller gets that node's error in their place and
fails open for them, while the calls of the other nodes go through.

A slot that moves (resharding) is not a failure, and neither MOVED nor ASK nor TRYAGAIN may become
one. redis-py's cluster pipeline (8.2) sends a command answered with MOVED again where it points,
which is enough. It answers ASK with ASKING on one pooled connection of the importing node and the
command on the next one, which is another whenever that pool holds two: the command is refused
again, and again, until redis-py gives up ("TTL exhausted") - the same as after sixteen TRYAGAIN
in about 0.4 s. Redis answers TRYAGAIN to a multi-key command, such as a script call, while a
migration has its keys on both nodes, or not all of them on the importing node, and until the
slot is handed over: a migration can outlast that. Every such refusal comes before the command
ran, so the refused calls alone are sent again, a few times with a short backoff; redirections
then come back as they are: MOVED updates the client's slot map for the next attempt, ASK is
followed at once with ASKING before each command on one connection of the importing node. A call
still refused after that fails open. A call is sent whole or not at all, so ``queue`` must queue
commands that may be sent twice. When no slot moves, all this costs one isinstance per reply.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand, RedisCluster
from redis.commands import CoreCommands
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    SlotNotCoveredError,
    TryAgainError,
)

from schemas.redis_client import REDIS_UNAVAILABLE, RedisClient

AnyPipeline = Pipeline | ClusterPipeline
# Queues the commands of call ``index`` (any number of them) on the pipeline of its node.
QueueCall = Callable[[AnyPipeline, int], None]
# One call's replies, in the order it queued its commands; or the error that failed its node.
CallResult = list[Any] | Exception

# The replies that may mean a command was refused, unrun, while its slot moves (MovedError is an
# AskError); ``_refusal`` tells them from the other cluster errors.
_MAYBE_REFUSED = (TryAgainError, AskError, ClusterError)
# What redis-py answers once it followed redirections or TRYAGAIN sixteen times in a row.
_REDIRECTIONS_EXHAUSTED = "TTL exhausted."
# The pauses before each new attempt of refused calls: with redis-py's own 0.4 s of TRYAGAIN
# retries on the first, a call waits up to about 1.8 s for a migration before it fails open.
REFUSED_RETRY_DELAYS_SECONDS = (0.05, 0.1, 0.2, 0.4, 0.6)


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
    replies (a command's own error among them, as an exception) or its node's error. A call
    refused while its slot moves is made again, up to ``len(REFUSED_RETRY_DELAYS_SECONDS)``
    times."""
    results, refused = await _one_attempt(redis, keys, queue, follow_redirections=True)
    for delay in REFUSED_RETRY_DELAYS_SECONDS:
        if not refused or not isinstance(redis, RedisCluster):
            break
        await asyncio.sleep(delay)
        refused = await _attempt_again(redis, keys, queue, refused, results)
    return results


async def _attempt_again(
    redis: RedisCluster,
    keys: Sequence[str],
    queue: QueueCall,
    calls: list[int],
    results: list[CallResult],
) -> list[int]:
    """Make the calls ``calls`` again, their redirections coming back as they are, and follow
    those; their results go into ``results``. The calls refused again."""
    again, _ = await _one_attempt(
        redis, [keys[index] for index in calls], _only(calls, queue), follow_redirections=False
    )
    refused: list[int] = []
    asked: dict[tuple[str, int], list[int]] = {}
    for index, result in zip(calls, again, strict=True):
        results[index] = result
        refusal = _refusal(result)
        if isinstance(refusal, MovedError):
            # The slot is handed over: the next attempt goes where it went.
            await redis.nodes_manager.move_slot(refusal)
        if isinstance(refusal, AskError) and not isinstance(refusal, MovedError):
            asked.setdefault((refusal.host, refusal.port), []).append(index)
        elif refusal is not None:
            refused.append(index)
    for (host, port), indices in asked.items():
        node = redis.get_node(host=host, port=port)
        if node is None:
            refused += indices
            continue
        try:
            answers: list[CallResult] = list(await _asking(node, indices, queue))
        except REDIS_UNAVAILABLE as exc:
            answers = [exc] * len(indices)
        for index, result in zip(indices, answers, strict=True):
            results[index] = result
            if _refusal(result) is not None:
                refused.append(index)
    return refused


async def _asking(node: ClusterNode, calls: Sequence[int], queue: QueueCall) -> list[list[Any]]:
    """The calls made on ``node``, the importing node of their slot, each command preceded by
    ASKING on the same connection, in one round trip."""
    recorder = _CommandRecorder()
    starts = []
    for index in calls:
        starts.append(len(recorder))
        queue(recorder, index)  # type: ignore[arg-type]  # records what a pipeline would send
    commands: list[PipelineCommand] = []
    for args, options in recorder.commands:
        commands.append(PipelineCommand(len(commands), "ASKING"))
        commands.append(PipelineCommand(len(commands), *args, **options))
    await node.execute_pipeline(commands)
    replies = [command.result for command in commands[1::2]]
    ends = [*starts[1:], len(replies)]
    return [replies[start:end] for start, end in zip(starts, ends, strict=True)]


class _CommandRecorder(CoreCommands):
    """Stands in for a pipeline: keeps the commands queued on it, with their parse options."""

    def __init__(self) -> None:
        self.commands: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> _CommandRecorder:
        self.commands.append((args, options))
        return self

    def __len__(self) -> int:
        return len(self.commands)


def _only(calls: Sequence[int], queue: QueueCall) -> QueueCall:
    """``queue`` for the calls ``calls``, numbered from 0."""
    return lambda pipe, n: queue(pipe, calls[n])


async def _one_attempt(
    redis: RedisClient, keys: Sequence[str], queue: QueueCall, *, follow_redirections: bool
) -> tuple[list[CallResult], list[int]]:
    """Every call's result, and the indices of the calls refused while their slot moves."""
    try:
        groups = await node_groups(redis, keys)
    except REDIS_UNAVAILABLE as exc:
        return [exc] * len(keys), []
    outcomes = await asyncio.gather(
        *(_pipelined(redis, group, queue, follow_redirections) for group in groups),
        return_exceptions=True,
    )
    results: list[CallResult] = [[] for _ in keys]
    refused: list[int] = []
    for group, outcome in zip(groups, outcomes, strict=True):
        if isinstance(outcome, REDIS_UNAVAILABLE):
            for index in group:
                results[index] = outcome
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            replies, group_refused = outcome
            for index, call_replies in zip(group, replies, strict=True):
                results[index] = call_replies
            refused += (group[n] for n in group_refused)
    return results, refused


async def _pipelined(
    redis: RedisClient, indices: Sequence[int], queue: QueueCall, follow_redirections: bool
) -> tuple[list[list[Any]], list[int]]:
    """Per call of ``indices``, its replies; and the positions (in ``indices``) of the calls
    with a command refused while its slot moves."""
    async with redis.pipeline(transaction=False) as pipe:
        starts = []
        for index in indices:
            starts.append(len(pipe))
            queue(pipe, index)
        if follow_redirections:
            replies = await pipe.execute(raise_on_error=False)
        else:
            assert isinstance(pipe, ClusterPipeline)
            replies = await pipe.execute(raise_on_error=False, allow_redirections=False)
    ends = [*starts[1:], len(replies)]
    # One isinstance per reply: the only cost of all this when no slot moves.
    flagged = [n for n, reply in enumerate(replies) if isinstance(reply, _MAYBE_REFUSED)]
    refused = []
    if flagged:
        refused = sorted({bisect_right(starts, n) - 1 for n in flagged if _is_refusal(replies[n])})
    return [replies[start:end] for start, end in zip(starts, ends, strict=True)], refused


def _refusal(result: CallResult) -> Exception | None:
    """The first reply of a call that refused it while its slot moves, if any."""
    if isinstance(result, Exception):
        return None
    return next((r for r in result if isinstance(r, Exception) and _is_refusal(r)), None)


def _is_refusal(reply: Exception) -> bool:
    if isinstance(reply, (TryAgainError, AskError)):
        return True
    # A CLUSTERDOWN (a ClusterError too) is a node failure, not a slot on the move.
    return type(reply) is ClusterError and str(reply) == _REDIRECTIONS_EXHAUSTED
