"""Cost per event in steady state: a second pass of already-seen issues through the warm worker,
counting what it asks of Redis and of the database while that pass goes through.

Redis: MONITOR, keeping only commands from the worker's own connections (found through /proc) and
not those its Lua scripts run, so each counted command is one the worker sent (a pipelined group
still counts each command: an upper bound on round trips); INFO stats gives the whole server's
total beside it. Database: the worker's statement counter if it has one, and the rows it wrote.
It only observes; it never writes to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

import redis.asyncio

from bench import proc
from bench.database import worker_written_rows
from bench.results import SteadyStateCost
from bench.worker_run import BATCHES_METRIC, CONSUMED_METRIC, DB_STATEMENTS_METRIC, BenchWorker

NO_STATEMENT_COUNTER = (
    f"not measured: the worker exposes no {DB_STATEMENTS_METRIC} metric, and SQLite cannot be "
    "observed from another process; the rows the worker wrote are counted instead"
)


async def measure_steady_state(
    worker: BenchWorker,
    *,
    redis_url: str,
    database_url: str,
    produce: Callable[[], Awaitable[int]],
    stall_seconds: float,
) -> SteadyStateCost:
    """Run ``produce`` (which loads the pass and returns its event count) and measure the pass."""
    redis_port = urlparse(redis_url).port or 6379
    before = await worker.metrics()
    rows_before = await worker_written_rows(database_url)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        commands_before = await _total_commands(client)
        worker_ports = proc.local_ports_connected_to(worker.pid, redis_port)
        seen: list[tuple[int, str]] = []
        async with client.monitor() as monitor:
            listener = asyncio.create_task(_record_commands(monitor, seen))
            try:
                events = await produce()
                after = await worker.wait_for_consumed(
                    int(before[CONSUMED_METRIC]) + events, stall_seconds=stall_seconds
                )
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        # A connection the worker opened during the pass is still in its pool now.
        worker_ports |= proc.local_ports_connected_to(worker.pid, redis_port)
        commands_after = await _total_commands(client)
    finally:
        await client.aclose()
    rows_after = await worker_written_rows(database_url)
    statements = None
    if DB_STATEMENTS_METRIC in after:
        statements = int(after[DB_STATEMENTS_METRIC] - before.get(DB_STATEMENTS_METRIC, 0))
    return SteadyStateCost(
        events=int(after[CONSUMED_METRIC] - before[CONSUMED_METRIC]),
        batches=int(after.get(BATCHES_METRIC, 0) - before.get(BATCHES_METRIC, 0)),
        worker_redis_commands=dict(
            Counter(command for port, command in seen if port in worker_ports)
        ),
        server_commands=commands_after - commands_before,
        db_rows_written={name: rows_after[name] - rows_before[name] for name in rows_after},
        db_statements=statements,
        db_statements_note="" if statements is not None else NO_STATEMENT_COUNTER,
    )


async def _record_commands(
    monitor: redis.asyncio.client.Monitor, seen: list[tuple[int, str]]
) -> None:
    async for command in monitor.listen():
        if command["client_type"] == "tcp" and command["command"]:
            seen.append((int(command["client_port"]), command["command"].split(" ", 1)[0].lower()))


async def _total_commands(client: redis.asyncio.Redis) -> int:
    stats = await client.info("stats")
    return int(stats["total_commands_processed"])
