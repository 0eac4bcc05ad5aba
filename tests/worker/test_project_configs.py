"""Project configuration as the worker loads it from the real databases: rules compiled, rate limits
and the spike rule read, defaults when a row is missing, few queries for many projects, and a
change whose version bump never reached Redis picked up by the periodic recheck."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.redis_cleanup import forget_projects
from schemas.tables import ErrorTrackingSettings, SpikeDetectionConfig, SuppressionRule
from tests.support.databases import counted_statements
from tests.worker.conftest import add_projects
from tests.worker.pipelines import FakeClock, new_project_ids
from worker.config import CONFIG_RECHECK_SECONDS, ProjectConfigCache
from worker.rate_limits import RateLimits
from worker.spike_rule import SpikeConfig

pytestmark = pytest.mark.redis

TYPE_ERROR_ONLY = {
    "type": "AND",
    "values": [{"key": "$exception_types", "operator": "exact", "value": ["TypeError"]}],
}


async def add_rule(
    engine: AsyncEngine, project_id: int, order_key: int, **columns: Any
) -> uuid.UUID:
    rule_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(SuppressionRule),
            [{"id": rule_id, "project_id": project_id, "order_key": order_key, **columns}],
        )
    return rule_id


async def test_a_project_without_configuration_rows_gets_no_rules_no_limits_and_default_spikes(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)

    config = (await ProjectConfigCache(engine, redis_client).configs_for([project]))[project]

    assert len(config.suppression_rules) == 0
    assert config.rate_limits == RateLimits()
    assert config.spike == SpikeConfig(multiplier=10, threshold=500, snooze_duration_minutes=10)


async def test_configuration_rows_become_compiled_rules_rate_limits_and_the_spike_rule(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    second = await add_rule(engine, project, 1, filters=TYPE_ERROR_ONLY, sampling_rate=0.5)
    first = await add_rule(engine, project, 0, filters=None)
    disabled = await add_rule(
        engine, project, 2, filters=None, disabled_data={"message": "m", "props": {}}
    )
    invalid = await add_rule(engine, project, 3, filters={"type": "XOR", "values": []})
    async with engine.begin() as connection:
        await connection.execute(
            insert(ErrorTrackingSettings),
            [
                {
                    "project_id": project,
                    "per_issue_rate_limit_value": 5,
                    "per_issue_rate_limit_bucket_size_minutes": None,
                    "project_rate_limit_value": 100,
                    "project_rate_limit_bucket_size_minutes": 10,
                }
            ],
        )
        await connection.execute(
            insert(SpikeDetectionConfig),
            [
                {
                    "project_id": project,
                    "multiplier": 3,
                    "threshold": 20,
                    "snooze_duration_minutes": 1,
                }
            ],
        )

    config = (await ProjectConfigCache(engine, redis_client).configs_for([project]))[project]

    # In order_key order; the disabled rule is skipped and the invalid one reported, not run.
    assert config.suppression_rules.rule_ids == [first, second]
    assert [f.rule_id for f in config.suppression_rules.compile_failures] == [invalid]
    # Every rule's version is kept, so a failure can only disable the version that failed.
    assert set(config.rule_versions) == {first, second, disabled, invalid}
    assert config.rate_limits == RateLimits(
        issue_value=5, issue_bucket_minutes=None, project_value=100, project_bucket_minutes=10
    )
    assert config.spike == SpikeConfig(multiplier=3, threshold=20, snooze_duration_minutes=1)


async def test_one_load_reads_every_project_with_four_queries(
    engine: AsyncEngine, redis_client: Redis
) -> None:
    many = new_project_ids(30)
    await add_projects(engine, *many)
    for project in many:
        await add_rule(engine, project, 0, filters=TYPE_ERROR_ONLY)
    configs = ProjectConfigCache(engine, redis_client)
    await configs.refresh(many)

    try:
        with counted_statements(engine) as statements:
            loaded = await configs.configs_for(many)
    finally:
        await forget_projects(redis_client, many)

    assert sorted(loaded) == many
    assert all(len(config.suppression_rules) == 1 for config in loaded.values())
    # Projects, settings, spike detection configs, suppression rules: one query each.
    assert len(statements) == 4


async def test_a_change_whose_version_bump_was_lost_is_picked_up_by_the_periodic_recheck(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    clock = FakeClock()
    configs = ProjectConfigCache(engine, redis_client, clock=clock)
    await configs.refresh([project])
    assert (await configs.configs_for([project]))[project].spike.threshold == 500

    # The API committed this but could not bump the version (Redis was down).
    async with engine.begin() as connection:
        await connection.execute(
            insert(SpikeDetectionConfig),
            [
                {
                    "project_id": project,
                    "multiplier": 2,
                    "threshold": 7,
                    "snooze_duration_minutes": 1,
                }
            ],
        )
    clock.now += CONFIG_RECHECK_SECONDS - 1
    await configs.refresh([project])
    assert (await configs.configs_for([project]))[project].spike.threshold == 500

    clock.now += 1
    await configs.refresh([project])
    assert (await configs.configs_for([project]))[project].spike.threshold == 7

    async with engine.begin() as connection:
        await connection.execute(
            update(SpikeDetectionConfig)
            .where(SpikeDetectionConfig.project_id == project)
            .values(threshold=9)
        )
    clock.now += CONFIG_RECHECK_SECONDS / 2
    await configs.refresh([project])
    # Reloaded when the recheck ran, so the next one is due a full interval after it.
    assert (await configs.configs_for([project]))[project].spike.threshold == 7
