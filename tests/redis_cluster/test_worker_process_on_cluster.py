"""Issue 13's scenario as a user meets it: the worker process (``REDIS_CLUSTER=true``) on the real
Kafka and the local Redis Cluster, three projects on three masters configured through the API on
the same cluster while the worker runs; their limits and rules apply from the next batch, with the
exact numbers of the single-node test, and /metrics accounts for every event."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from schemas.db import make_engine
from tests.redis_cluster.conftest import master_of
from tests.worker.conftest import add_projects
from tests.worker.events import exception_event
from tests.worker.operator_api import error_tracking, operator_api
from tests.worker.processes import Topics, create_topics, delete_topics
from tests.worker.test_worker_suppression_and_limits import (
    accepted_uuids,
    send,
    wait_until_consumed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis_cluster, pytest.mark.timeout(180)]


async def test_limits_and_rules_set_through_the_api_apply_on_every_master(
    sqlite_url: str,
    kafka_bootstrap: str,
    cluster_url: str,
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
    start_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    projects = projects_on_masters(1)
    assert len({master_of(cluster, p) for p in projects}) == 3
    engine = make_engine(sqlite_url)
    await add_projects(engine, *projects)
    await engine.dispose()
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    # Read by the worker process and by the API's settings alike.
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    try:
        worker = start_worker(sqlite_url, topics, f"group-{uuid.uuid4().hex}", redis=cluster_url)
        before = [exception_event(p, error_type="KeyError") for p in projects]
        await send(kafka_bootstrap, topics, before)
        assert len(await accepted_uuids(kafka_bootstrap, topics, 3)) == 3, worker.log_tail()

        async with operator_api(sqlite_url, cluster_url, projects) as api:
            for project in projects:
                rule = await api.post(
                    f"{error_tracking(project)}/suppression_rules/",
                    json={
                        "filters": {
                            "type": "AND",
                            "values": [{"key": "$exception_types", "value": ["KeyError"]}],
                        }
                    },
                )
                limits = await api.patch(
                    f"{error_tracking(project)}/settings/update_settings/",
                    json={
                        "per_issue_rate_limit_value": 4,
                        "per_issue_rate_limit_bucket_size_minutes": 60,
                        "project_rate_limit_value": 7,
                        "project_rate_limit_bucket_size_minutes": 60,
                    },
                )
                assert (rule.status_code, limits.status_code) == (201, 200), limits.text

        expected = list(before)
        stream = []
        for project in projects:
            value_errors = [exception_event(project, error_type="ValueError") for _ in range(6)]
            key_errors = [exception_event(project, error_type="KeyError") for _ in range(3)]
            syntax_errors = [exception_event(project, error_type="SyntaxError") for _ in range(5)]
            stream += value_errors + key_errors + syntax_errors
            expected += value_errors[:4] + syntax_errors[:3]
        await send(kafka_bootstrap, topics, stream)

        uuids = await accepted_uuids(kafka_bootstrap, topics, len(expected))
        assert sorted(uuids) == sorted(e["uuid"] for e in expected), worker.log_tail()
        assert await wait_until_consumed(worker, 45) == {
            "forwarded": 24,
            "suppressed": 9,
            "rate_limited_issue": 9,
            "rate_limited_project": 3,
            "dead_lettered": 0,
        }
    finally:
        await delete_topics(kafka_bootstrap, topics)
