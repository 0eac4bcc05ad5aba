"""Cost per event in steady state: a second pass of already-seen issues through the warm worker,
counting what it asks of Redis and of the database while that pass goes through.

Redis: the round trips counted by ``bench.worker_probe`` inside the worker process; MONITOR,
keeping only commands from the worker's own connections (found through /proc) and not those its Lua
scripts run, so each counted command is one the worker sent; INFO stats and INFO commandstats give
the whole server's figures beside it. Database: the statements counted by ``bench.worker_probe``,
by kind, and the rows the worker wrote. It only observes; it never writes to Redis.
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
from bench.worker_run import (
    BATCHES_METRIC,
    CONSUMED_METRIC,
    REDIS_ROUND_TRIPS_METRIC,
    SPIKES_METRIC,
    BenchWorker,
    statement_counts,
)
from schemas.tables import (
    ErrorTrackingSettings,
    Issue,
    Project,
    SpikeDetectionConfig,
    SpikeEvent,
    SuppressionRule,
)

MONITOR_DRAIN_SECONDS = 0.5
# What a published spike costs the database: naming its issue, then storing the spike.
SPIKE_STATEMENTS = frozenset(
    {f"select {Issue.__tablename__}", f"insert {SpikeEvent.__tablename__}"}
)
# A project's configuration, read again every 30 s (and after each change), whatever the traffic.
CONFIG_STATEMENTS = frozenset(
    f"select {table.__tablename__}"
    for table in (Project, ErrorTrackingSettings, SpikeDetectionConfig, SuppressionRule)
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
    statements_before = statement_counts(before)
    statements = {
        kind: count - statements_before.get(kind, 0)
        for kind, count in statement_counts(after).items()
        if count > statements_before.get(kind, 0)
    }
    return SteadyStateCost(
        events=int(after[CONSUMED_METRIC] - before[CONSUMED_METRIC]),
        batches=int(after.get(BATCHES_METRIC, 0) - before.get(BATCHES_METRIC, 0)),
        redis_round_trips=int(after[REDIS_ROUND_TRIPS_METRIC] - before[REDIS_ROUND_TRIPS_METRIC]),
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
        db_statements=sum(statements.values()),
        db_statements_by_kind=statements,
        db_statements_for_spikes=sum(
            n for kind, n in statements.items() if kind in SPIKE_STATEMENTS
        ),
        db_statements_for_configs=sum(
            n for kind, n in statements.items() if kind in CONFIG_STATEMENTS
        ),
        spikes_published=int(after.get(SPIKES_METRIC, 0) - before.get(SPIKES_METRIC, 0)),
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
