"""The benchmark's database: a fresh SQLite file, migrated, holding the bench projects and the
configuration a realistic deployment has (a few suppression rules, rate limits, spike configs).

It writes only configuration, exactly what the API would store; issues, frames and spikes are the
worker's to write, and the bench only counts them.
"""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.generator import RARE_TYPE
from schemas.db import make_engine
from schemas.migrate import upgrade
from schemas.property_filters import validate_filters
from schemas.tables import (
    DEFAULT_SPIKE_DETECTOR,
    DEFAULT_SPIKE_MULTIPLIER,
    DEFAULT_SPIKE_THRESHOLD,
    ErrorTrackingSettings,
    Issue,
    IssueFingerprint,
    Project,
    SpikeDetectionConfig,
    SpikeEvent,
    StackFrame,
    SuppressionRule,
    SymbolSet,
)

RARE_TYPE_RULE_PROJECTS = 4
PATTERN_RULE_PROJECTS = 3

# Tables only the worker writes: their growth is what "statements per event" is about.
WORKER_WRITTEN_TABLES = {
    "issues": Issue,
    "issue_fingerprints": IssueFingerprint,
    "stack_frames": StackFrame,
    "symbol_sets": SymbolSet,
    "spike_events": SpikeEvent,
}


@dataclass(frozen=True, slots=True)
class BenchConfiguration:
    """What was configured, as the report shows it."""

    suppression_rules: int
    rate_limited_projects: int


def sqlite_url(path: pathlib.Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


async def create_bench_database(
    url: str,
    stream_projects: Sequence[int],
    *,
    javascript_projects: Sequence[int],
    burst_projects: Sequence[int] = (),
    burst_threshold: int | None = None,
    detector: str = DEFAULT_SPIKE_DETECTOR,
) -> BenchConfiguration:
    """Migrate ``url`` and store the projects and their configuration.

    The burst projects get a low spike threshold so that the latency bursts cross it quickly; the
    stream projects keep the defaults (threshold 500, multiplier 10). Every project decides its
    spikes with ``detector``."""
    await asyncio.to_thread(upgrade, url)
    rules = suppression_rules(stream_projects, javascript_projects)
    limits = rate_limits(stream_projects)
    spike_configs = []
    project_rows = [{"id": pid, "name": f"bench project {pid}"} for pid in stream_projects]
    if detector != DEFAULT_SPIKE_DETECTOR:
        spike_configs += [
            {
                "project_id": pid,
                "threshold": DEFAULT_SPIKE_THRESHOLD,
                "multiplier": DEFAULT_SPIKE_MULTIPLIER,
                "detector": detector,
            }
            for pid in stream_projects
        ]
    if burst_projects and burst_threshold is None:
        raise ValueError("burst projects need their spike threshold")
    for burst_project in burst_projects:
        project_rows.append({"id": burst_project, "name": f"bench burst {burst_project}"})
        spike_configs.append(
            {
                "project_id": burst_project,
                "threshold": burst_threshold,
                "multiplier": DEFAULT_SPIKE_MULTIPLIER,
                "detector": detector,
            }
        )
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(Project), project_rows)
            await connection.execute(insert(SuppressionRule), rules)
            await connection.execute(insert(ErrorTrackingSettings), limits)
            if spike_configs:
                await connection.execute(insert(SpikeDetectionConfig), spike_configs)
    finally:
        await engine.dispose()
    return BenchConfiguration(
        suppression_rules=len(rules),
        rate_limited_projects=len(limits),
    )


def suppression_rules(
    stream_projects: Sequence[int], javascript_projects: Sequence[int]
) -> list[dict[str, Any]]:
    """A few rules of the kinds users write: sample a rare noisy type, drop a known transient
    error, and a regex on sources (RE2 in the worker's hot path)."""
    rules = []
    for project_id in javascript_projects[:RARE_TYPE_RULE_PROJECTS]:
        rules.append(
            _rule(
                project_id,
                order_key=0,
                sampling_rate=0.1,
                filters={
                    "type": "AND",
                    "values": [
                        {
                            "key": "$exception_types",
                            "type": "event",
                            "operator": "exact",
                            "value": [RARE_TYPE],
                        }
                    ],
                },
            )
        )
    javascript = set(javascript_projects)
    python_projects = [pid for pid in stream_projects if pid not in javascript]
    for project_id in python_projects[:PATTERN_RULE_PROJECTS]:
        rules.append(
            _rule(
                project_id,
                order_key=1,
                sampling_rate=1.0,
                filters={
                    "type": "OR",
                    "values": [
                        {
                            "key": "$exception_values",
                            "type": "event",
                            "operator": "icontains",
                            "value": "connection reset by peer",
                        },
                        {
                            "key": "$exception_sources",
                            "type": "event",
                            "operator": "regex",
                            "value": r"^app/tasks/.*(sync|fetch)",
                        },
                    ],
                },
            )
        )
    return rules


def rate_limits(stream_projects: Sequence[int]) -> list[dict[str, Any]]:
    """Per-issue limits on four projects, project-wide limits on two of them."""
    limits = []
    for position, project_id in enumerate(stream_projects[:4]):
        limits.append(
            {
                "project_id": project_id,
                "per_issue_rate_limit_value": 2_000,
                "per_issue_rate_limit_bucket_size_minutes": 60,
                "project_rate_limit_value": 20_000 if position < 2 else None,
                "project_rate_limit_bucket_size_minutes": 60 if position < 2 else None,
            }
        )
    return limits


async def worker_written_rows(url: str) -> dict[str, int]:
    """Row count of every table only the worker writes."""
    engine = make_engine(url)
    try:
        return await _count_rows(engine)
    finally:
        await engine.dispose()


async def fingerprints_of_issues(url: str, issue_ids: Sequence[str]) -> dict[str, str]:
    """issue id (text) -> fingerprint, for the given issues that exist."""
    if not issue_ids:
        return {}
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(IssueFingerprint.issue_id, IssueFingerprint.fingerprint).where(
                    IssueFingerprint.issue_id.in_([uuid.UUID(issue_id) for issue_id in issue_ids])
                )
            )
            return {str(row.issue_id): row.fingerprint for row in rows}
    finally:
        await engine.dispose()


async def _count_rows(engine: AsyncEngine) -> dict[str, int]:
    counts = {}
    async with engine.connect() as connection:
        for name, table in WORKER_WRITTEN_TABLES.items():
            counts[name] = (
                await connection.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return counts


def _rule(
    project_id: int, *, order_key: int, sampling_rate: float, filters: dict[str, Any]
) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "order_key": order_key,
        "sampling_rate": sampling_rate,
        # Stored as the API would store it: validated and normalised by the shared grammar.
        "filters": validate_filters(filters),
    }
