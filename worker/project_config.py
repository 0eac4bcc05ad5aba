"""What the worker runs for one project (its compiled suppression rules, rate limits and spike
rule), read for many projects at once: a few queries per load, whatever the number of projects.

Read-only, and it never caches: ``worker.config`` decides when a project is loaded again.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.tables import ErrorTrackingSettings, Project, SpikeDetectionConfig, SuppressionRule
from worker.rate_limits import RateLimits
from worker.spike_rule import SpikeConfig
from worker.suppression import RuleSet, RuleSpec, compile_rules
from worker.upserts import chunked


def _no_rules() -> RuleSet:
    return compile_rules([])


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """A project's configuration as loaded; missing rows mean no rules, no limits and the
    default spike rule."""

    project_id: int
    suppression_rules: RuleSet = field(default_factory=_no_rules)
    # Each rule's ``updated_at`` at load time: a failure may only disable the version it saw.
    rule_versions: Mapping[uuid.UUID, datetime] = field(default_factory=dict)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    spike: SpikeConfig = field(default_factory=SpikeConfig)


async def load_project_configs(
    connection: AsyncConnection, project_ids: Sequence[int]
) -> dict[int, ProjectConfig]:
    """The config of every project of ``project_ids`` that exists; unknown ids are left out."""
    configs: dict[int, ProjectConfig] = {}
    for chunk in chunked(sorted(set(project_ids))):
        existing = list(await connection.scalars(select(Project.id).where(Project.id.in_(chunk))))
        if not existing:
            continue
        limits = await _rate_limits(connection, existing)
        spike = await _spike_configs(connection, existing)
        rules = await _rule_rows(connection, existing)
        for project_id in existing:
            project_rules = rules.get(project_id, [])
            configs[project_id] = ProjectConfig(
                project_id=project_id,
                suppression_rules=compile_rules([_rule_spec(row) for row in project_rules]),
                rule_versions={row.id: row.updated_at for row in project_rules},
                rate_limits=limits.get(project_id, RateLimits()),
                spike=spike.get(project_id, SpikeConfig()),
            )
    return configs


async def _rate_limits(
    connection: AsyncConnection, project_ids: Sequence[int]
) -> dict[int, RateLimits]:
    table = ErrorTrackingSettings
    rows = await connection.execute(
        select(
            table.project_id,
            table.per_issue_rate_limit_value,
            table.per_issue_rate_limit_bucket_size_minutes,
            table.project_rate_limit_value,
            table.project_rate_limit_bucket_size_minutes,
        ).where(table.project_id.in_(project_ids))
    )
    return {
        row.project_id: RateLimits(
            issue_value=row.per_issue_rate_limit_value,
            issue_bucket_minutes=row.per_issue_rate_limit_bucket_size_minutes,
            project_value=row.project_rate_limit_value,
            project_bucket_minutes=row.project_rate_limit_bucket_size_minutes,
        )
        for row in rows
    }


async def _spike_configs(
    connection: AsyncConnection, project_ids: Sequence[int]
) -> dict[int, SpikeConfig]:
    table = SpikeDetectionConfig
    rows = await connection.execute(
        select(
            table.project_id,
            table.multiplier,
            table.threshold,
            table.snooze_duration_minutes,
            table.detector,
        ).where(table.project_id.in_(project_ids))
    )
    return {
        row.project_id: SpikeConfig(
            multiplier=row.multiplier,
            threshold=row.threshold,
            snooze_duration_minutes=row.snooze_duration_minutes,
            detector=row.detector,
        )
        for row in rows
    }


async def _rule_rows(
    connection: AsyncConnection, project_ids: Sequence[int]
) -> dict[int, list[Any]]:
    table = SuppressionRule
    rows = await connection.execute(
        select(
            table.id,
            table.project_id,
            table.filters,
            table.order_key,
            table.sampling_rate,
            table.disabled_data,
            table.updated_at,
        ).where(table.project_id.in_(project_ids))
    )
    by_project: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_project[row.project_id].append(row)
    return by_project


def _rule_spec(row: Any) -> RuleSpec:
    return RuleSpec(
        id=row.id,
        filters=row.filters,
        order_key=row.order_key,
        sampling_rate=row.sampling_rate,
        disabled=row.disabled_data is not None,
    )
