"""Suppression rules in the pipeline, on the real databases and Redis: rules stored in the database
suppress, the first matching rule decides, and a rule that fails is disabled once (its
``disabled_data`` written only while nobody changed the rule) without losing its event."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.redis_keys import config_version_key
from schemas.tables import SuppressionRule, utcnow
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event
from tests.worker.pipelines import build_pipeline, messages
from worker.disabled_rules import DisabledRule, DisabledRuleRecorder
from worker.outcomes import Outcome
from worker.suppression import RuleFailure

pytestmark = pytest.mark.redis

# An integer no float can hold: comparing it with gt raises inside the filter engine, which is
# the kind of surprise a rule failing at run time stands for.
HUGE = 10**400
AMOUNT_OVER_100 = {"type": "AND", "values": [{"key": "amount", "operator": "gt", "value": 100}]}


def types_are(*types: str) -> dict[str, Any]:
    return {
        "type": "AND",
        "values": [{"key": "$exception_types", "operator": "exact", "value": list(types)}],
    }


def disabled_total() -> float:
    return REGISTRY.get_sample_value("spikewatch_suppression_rules_disabled_total") or 0.0


async def add_rule(
    engine: AsyncEngine, project_id: int, order_key: int, filters: Any, sampling_rate: float = 1.0
) -> uuid.UUID:
    rule_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(SuppressionRule),
            [
                {
                    "id": rule_id,
                    "project_id": project_id,
                    "order_key": order_key,
                    "filters": filters,
                    "sampling_rate": sampling_rate,
                }
            ],
        )
    return rule_id


async def disabled_data(engine: AsyncEngine, rule_id: uuid.UUID) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(
            select(SuppressionRule.disabled_data).where(SuppressionRule.id == rule_id)
        )


async def test_the_first_matching_rule_decides_and_suppressed_events_are_not_forwarded(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, other_project, _ = project_ids
    await add_projects(engine, project, other_project)
    # Matches KeyError first and keeps it, although the catch-all after it would suppress it.
    await add_rule(engine, project, 0, types_are("KeyError"), sampling_rate=0.0)
    await add_rule(engine, project, 1, None)
    pipeline = build_pipeline(engine, redis_client)

    records = await pipeline.process(
        messages(
            encode(exception_event(project, error_type="TypeError")),
            encode(exception_event(project, error_type="KeyError")),
            encode(exception_event(other_project, error_type="TypeError")),
        )
    )

    assert [r.outcome for r in records] == [
        Outcome.SUPPRESSED,
        Outcome.FORWARDED,
        Outcome.FORWARDED,
    ]


async def test_a_rule_failing_at_run_time_is_disabled_once_and_its_event_still_decided(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    failing = await add_rule(engine, project, 0, AMOUNT_OVER_100)
    await add_rule(engine, project, 1, types_are("TypeError"))
    first_worker = build_pipeline(engine, redis_client)
    second_worker = build_pipeline(engine, redis_client)
    # Both workers load the rule while it is enabled.
    for worker in (first_worker, second_worker):
        [record] = await worker.process(messages(encode(exception_event(project, amount=500))))
        assert record.outcome is Outcome.SUPPRESSED
    before = disabled_total()

    failed = await first_worker.process(
        messages(
            encode(exception_event(project, error_type="TypeError", amount=HUGE)),
            encode(exception_event(project, error_type="KeyError", amount=500)),
            first_offset=1,
        )
    )
    recorded = await disabled_data(engine, failing)
    [failed_too] = await second_worker.process(
        messages(encode(exception_event(project, error_type="KeyError", amount=HUGE + 1)))
    )

    # The failing rule is skipped: the next rule suppresses the TypeError, nothing the KeyError.
    assert [r.outcome for r in failed] == [Outcome.SUPPRESSED, Outcome.FORWARDED]
    assert failed_too.outcome is Outcome.FORWARDED
    assert recorded == {
        "message": "OverflowError: int too large to convert to float",
        "props": {"amount": HUGE},
    }
    # The second worker's failure found disabled_data set and left it as the first wrote it.
    assert await disabled_data(engine, failing) == recorded
    assert disabled_total() == before + 1


async def test_an_update_clears_disabled_data_and_the_rule_applies_again_after_the_bump(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    failing = await add_rule(engine, project, 0, AMOUNT_OVER_100)
    pipeline = build_pipeline(engine, redis_client)
    await pipeline.process(messages(encode(exception_event(project, amount=HUGE))))
    assert await disabled_data(engine, failing) is not None

    # What the API's PATCH does: clear disabled_data, touch updated_at, then bump the version.
    async with engine.begin() as connection:
        await connection.execute(
            update(SuppressionRule)
            .where(SuppressionRule.id == failing)
            .values(disabled_data=None, updated_at=utcnow())
        )
    [before_bump] = await pipeline.process(
        messages(encode(exception_event(project, amount=500)), first_offset=1)
    )
    await redis_client.incr(config_version_key(project))
    [after_bump] = await pipeline.process(
        messages(encode(exception_event(project, amount=500)), first_offset=2)
    )

    assert before_bump.outcome is Outcome.FORWARDED
    assert after_bump.outcome is Outcome.SUPPRESSED


async def test_a_failure_seen_on_a_version_of_the_rule_since_updated_is_not_recorded(
    engine: AsyncEngine, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    rule_id = await add_rule(engine, project, 0, AMOUNT_OVER_100)
    async with engine.connect() as connection:
        loaded_at = await connection.scalar(
            select(SuppressionRule.updated_at).where(SuppressionRule.id == rule_id)
        )
    async with engine.begin() as connection:
        await connection.execute(
            update(SuppressionRule)
            .where(SuppressionRule.id == rule_id)
            .values(updated_at=loaded_at + timedelta(seconds=1))
        )
    recorder = DisabledRuleRecorder(engine)
    stale = DisabledRule(project, RuleFailure(rule_id, "boom", {}), loaded_updated_at=loaded_at)
    current = DisabledRule(
        project,
        RuleFailure(rule_id, "boom", {}),
        loaded_updated_at=loaded_at + timedelta(seconds=1),
    )

    assert await recorder.record([stale]) == set()
    assert await disabled_data(engine, rule_id) is None
    assert await recorder.record([current]) == {rule_id}
    assert await recorder.record([current]) == set()
    assert await disabled_data(engine, rule_id) == {"message": "boom", "props": {}}


async def test_an_invalid_rule_is_recorded_once_and_the_valid_rules_still_run(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await add_projects(engine, project)
    # Written around the API, which would have refused it.
    invalid = await add_rule(engine, project, 0, {"type": "XOR", "values": []})
    await add_rule(engine, project, 1, types_are("TypeError"))
    pipeline = build_pipeline(engine, redis_client)
    before = disabled_total()

    first = await pipeline.process(messages(encode(exception_event(project))))
    second = await pipeline.process(messages(encode(exception_event(project)), first_offset=1))

    assert [r.outcome for r in first + second] == [Outcome.SUPPRESSED, Outcome.SUPPRESSED]
    assert await disabled_data(engine, invalid) == {
        "message": "invalid filters: filters.type: group type must be 'AND' or 'OR', got 'XOR'",
        "props": {},
    }
    assert disabled_total() == before + 1
