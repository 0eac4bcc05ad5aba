"""The only worker of a group, ``kill -9``ed and started again at once under the same
``WORKER_INSTANCE_ID``: it takes its partitions back without waiting for its dead session to time
out, and the first event sent after the restart comes out on the accepted topic long before that
timeout. The time it took is printed (RELIABILITY.md keeps it); the assertion is only that the
session timeout was not waited for."""

from __future__ import annotations

import time

import msgspec
import pytest

from tests.reliability.conftest import BUCKET_SECONDS, LaunchWorker, topics_on
from tests.worker.conftest import stored_project
from tests.worker.events import encode, exception_event
from tests.worker.processes import produce, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(180)]

# Long, so that a restart that waited for the dead member's session would show plainly.
SESSION_TIMEOUT_SECONDS = 60
PARTITIONS = 4


async def test_a_worker_restarted_under_its_instance_id_consumes_again_before_its_session_expires(
    sqlite_url: str, kafka_bootstrap: str, launch_worker: LaunchWorker
) -> None:
    project_id = await stored_project(sqlite_url)
    settings_env = {
        "BUCKET_SIZE_SECONDS": str(BUCKET_SECONDS),
        "CONSUMER_SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT_SECONDS),
        "WORKER_INSTANCE_ID": "worker-{hostname}-static-test",
    }
    async with topics_on(kafka_bootstrap, PARTITIONS) as topics:
        group = f"group-static-{time.time_ns()}"
        first = launch_worker(sqlite_url, kafka_bootstrap, topics, group, settings_env=settings_env)
        warm_up = [exception_event(project_id, value="before") for _ in range(PARTITIONS)]
        await produce(
            kafka_bootstrap,
            topics.exception_events,
            [(n, None, encode(event)) for n, event in enumerate(warm_up)],
        )
        await read_topic(
            kafka_bootstrap, topics.accepted, expected=len(warm_up), timeout_seconds=60
        )

        first.kill()
        restarted_at = time.monotonic()
        launch_worker(sqlite_url, kafka_bootstrap, topics, group, settings_env=settings_env)
        after = [exception_event(project_id, value="after") for _ in range(PARTITIONS)]
        await produce(
            kafka_bootstrap,
            topics.exception_events,
            [(n, None, encode(event)) for n, event in enumerate(after)],
        )
        accepted = await read_topic(
            kafka_bootstrap,
            topics.accepted,
            expected=len(warm_up) + len(after),
            timeout_seconds=SESSION_TIMEOUT_SECONDS - 5,
            settle_seconds=0,
        )
        through_seconds = time.monotonic() - restarted_at

    forwarded = {msgspec.json.decode(record.value)["uuid"] for record in accepted}
    assert {event["uuid"] for event in after} <= forwarded
    assert through_seconds < SESSION_TIMEOUT_SECONDS
    print(f"\nstatic member restarted: next events through in {through_seconds:.1f} s")
