"""Suppression rules and rate limits end to end: a real worker process on the real Kafka broker,
Redis and a migrated database, configured through the HTTP API while it runs. What the rules and
limits hold back never reaches the accepted topic, and /metrics accounts for every event."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from schemas.db import make_engine
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event
from tests.worker.operator_api import error_tracking, operator_api
from tests.worker.processes import (
    Topics,
    WorkerProcess,
    create_topics,
    delete_topics,
    outcome_counts,
    produce,
    read_topic,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(180)]

DELIVERY_TIMEOUT_SECONDS = 60
# An integer no float can hold: comparing it with gt raises inside the filter engine, which is
# the kind of surprise a rule failing at run time stands for.
HUGE = 10**400
AMOUNT_OVER_100 = {"type": "AND", "values": [{"key": "amount", "operator": "gt", "value": 100}]}


async def send(bootstrap: str, topics: Topics, events: list[dict[str, Any]]) -> None:
    await produce(bootstrap, topics.exception_events, [(0, b"key", encode(e)) for e in events])


async def accepted_uuids(bootstrap: str, topics: Topics, expected: int) -> list[str]:
    records = await read_topic(
        bootstrap, topics.accepted, expected=expected, timeout_seconds=DELIVERY_TIMEOUT_SECONDS
    )
    return [msgspec.json.decode(record.value)["uuid"] for record in records]


async def wait_until_consumed(worker: WorkerProcess, events: int) -> dict[str, float]:
    async def consumed() -> bool:
        return (await worker.metrics())["spikewatch_events_consumed_total"] == events

    await wait_for("the metrics", consumed, timeout_seconds=15, workers=[worker])
    return outcome_counts(await worker.metrics())


async def test_rules_and_limits_set_through_the_api_apply_from_the_next_batch(
    sqlite_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    project_ids: list[int],
    start_worker: Any,
) -> None:
    project, _, _ = project_ids
    engine = make_engine(sqlite_url)
    await add_projects(engine, project)
    await engine.dispose()
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    try:
        worker = start_worker(sqlite_url, topics, f"group-{uuid.uuid4().hex}")
        before = [exception_event(project, error_type="KeyError") for _ in range(3)]
        await send(kafka_bootstrap, topics, before)
        assert sorted(await accepted_uuids(kafka_bootstrap, topics, 3)) == sorted(
            e["uuid"] for e in before
        ), worker.log_tail()

        async with operator_api(sqlite_url, redis_url, [project]) as api:
            response = await api.post(
                f"{error_tracking(project)}/suppression_rules/",
                json={
                    "filters": {
                        "type": "AND",
                        "values": [{"key": "$exception_types", "value": ["KeyError"]}],
                    }
                },
            )
            assert response.status_code == 201, response.text
            response = await api.patch(
                f"{error_tracking(project)}/settings/update_settings/",
                json={
                    "per_issue_rate_limit_value": 4,
                    "per_issue_rate_limit_bucket_size_minutes": 60,
                    "project_rate_limit_value": 7,
                    "project_rate_limit_bucket_size_minutes": 60,
                },
            )
            assert response.status_code == 200, response.text

        value_errors = [exception_event(project, error_type="ValueError") for _ in range(6)]
        key_errors = [exception_event(project, error_type="KeyError") for _ in range(3)]
        syntax_errors = [exception_event(project, error_type="SyntaxError") for _ in range(5)]
        await send(kafka_bootstrap, topics, value_errors + key_errors + syntax_errors)

        # ValueError: its issue bucket admits 4 (the project's has 3 left). SyntaxError: its issue
        # bucket admits 4, the project's only 3 of them; the fifth finds the issue bucket empty.
        expected = [*before, *value_errors[:4], *syntax_errors[:3]]
        uuids = await accepted_uuids(kafka_bootstrap, topics, len(expected))
        assert sorted(uuids) == sorted(e["uuid"] for e in expected), worker.log_tail()
        assert await wait_until_consumed(worker, 17) == {
            "forwarded": 10,
            "suppressed": 3,
            "rate_limited_issue": 3,
            "rate_limited_project": 1,
            "dead_lettered": 0,
        }
    finally:
        await delete_topics(kafka_bootstrap, topics)


async def test_a_rule_failing_at_run_time_is_disabled_once_until_an_api_update_clears_it(
    sqlite_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    project_ids: list[int],
    start_worker: Any,
) -> None:
    project, _, _ = project_ids
    engine = make_engine(sqlite_url)
    await add_projects(engine, project)
    await engine.dispose()
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    try:
        async with operator_api(sqlite_url, redis_url, [project]) as api:
            rules = f"{error_tracking(project)}/suppression_rules/"
            response = await api.post(rules, json={"filters": AMOUNT_OVER_100})
            assert response.status_code == 201, response.text
            rule = f"{rules}{response.json()['id']}/"
            worker = start_worker(sqlite_url, topics, f"group-{uuid.uuid4().hex}")

            suppressed, failing, skipped = (
                exception_event(project, amount=amount) for amount in (500, HUGE, 500)
            )
            await send(kafka_bootstrap, topics, [suppressed, failing, skipped])
            # The failing event is not lost; after it the rule is skipped.
            uuids = await accepted_uuids(kafka_bootstrap, topics, 2)
            assert sorted(uuids) == sorted([failing["uuid"], skipped["uuid"]]), worker.log_tail()
            disabled = (await api.get(rule)).json()["disabled_data"]
            assert disabled == {
                "message": "OverflowError: int too large to convert to float",
                "props": {"amount": HUGE},
            }

            failing_again = exception_event(project, amount=HUGE + 1)
            await send(kafka_bootstrap, topics, [failing_again])
            assert len(await accepted_uuids(kafka_bootstrap, topics, 3)) == 3
            # Skipped, so it did not fail again: the first failure is the one on record.
            assert (await api.get(rule)).json()["disabled_data"] == disabled
            samples = await worker.metrics()
            assert samples["spikewatch_suppression_rules_disabled_total"] == 1

            response = await api.patch(rule, json={})
            assert response.status_code == 204, response.text
            assert (await api.get(rule)).json()["disabled_data"] is None

        suppressed_again, kept = (exception_event(project, amount=n) for n in (500, 50))
        await send(kafka_bootstrap, topics, [suppressed_again, kept])
        uuids = await accepted_uuids(kafka_bootstrap, topics, 4)
        assert sorted(uuids) == sorted(
            e["uuid"] for e in (failing, skipped, failing_again, kept)
        ), worker.log_tail()
        counts = await wait_until_consumed(worker, 6)
        assert (counts["forwarded"], counts["suppressed"]) == (4, 2)
    finally:
        await delete_topics(kafka_bootstrap, topics)
