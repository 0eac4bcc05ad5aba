"""Cost per event in steady state: a second pass of already-seen issues through the warm worker,
counting what it asks of Redis and of the database while that pass goes through.

Redis: MONITOR, keeping only commands from the worker's own connections (found through /proc) and
not those its Lua scripts run, so each counted command is one the worker sent (a pipelined group
still counts each command: an upper bound on round trips); INFO stats and INFO commandstats give
the whole server's figures beside it. Database: the statements counted by ``bench.worker_probe``
inside the worker process, and the rows it wrote. It only observes; it never writes to Redis.
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

MONITOR_DRAIN_SECONDS = 0.5


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
        calls_before = await _calls_by_command(client)
        worker_ports = proc.local_ports_connected_to(worker.pid, redis_port)
        seen: list[tuple[int, str]] = []
        async with client.monitor() as monitor:
            listener = asyncio.create_task(_record_commands(monitor, seen))
            try:
                events = await produce()
                after = await worker.wait_for_consumed(
                    int(before[CONSUMED_METRIC]) + events, stall_seconds=stall_seconds
                )
                # MONITOR lines are pushed as commands run; let the last batch's lines arrive.
                await asyncio.sleep(MONITOR_DRAIN_SECONDS)
                if listener.done():
                    # Its count would be partial: fail the part rather than under-report.
                    listener.result()
                    raise RuntimeError("the MONITOR reader stopped before the pass ended")
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        # A connection the worker opened during the pass is still in its pool now.
        worker_ports |= proc.local_ports_connected_to(worker.pid, redis_port)
        commands_after = await _total_commands(client)
        calls_after = await _calls_by_command(client)
    finally:
        await client.aclose()
    rows_after = await worker_written_rows(database_url)
    return SteadyStateCost(
        events=int(after[CONSUMED_METRIC] - before[CONSUMED_METRIC]),
        batches=int(after.get(BATCHES_METRIC, 0) - before.get(BATCHES_METRIC, 0)),
        worker_redis_commands=dict(
            Counter(command for port, command in seen if port in worker_ports)
        ),
        server_commands=commands_after - commands_before,
        server_calls_by_command={
            name: calls - calls_before.get(name, 0)
            for name, calls in calls_after.items()
            if calls > calls_before.get(name, 0)
        },
        db_rows_written={name: rows_after[name] - rows_before[name] for name in rows_after},
        db_statements=int(after[DB_STATEMENTS_METRIC] - before[DB_STATEMENTS_METRIC]),
    )


async def _record_commands(
    monitor: redis.asyncio.client.Monitor, seen: list[tuple[int, str]]
) -> None:
    async for command in monitor.listen():
        if command["client_type"] == "tcp" and command["command"]:
            seen.append((int(command["client_port"]), command["command"].split(" ", 1)[0].lower()))


async def _calls_by_command(client: redis.asyncio.Redis) -> dict[str, int]:
    """INFO commandstats as {command: calls}; commands run inside Lua scripts count here too."""
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


async def _total_commands(client: redis.asyncio.Redis) -> int:
    stats = await client.info("stats")
    return int(stats["total_commands_processed"])
