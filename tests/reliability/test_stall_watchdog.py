"""A worker that stops making progress while events wait for it ends itself, and a fresh worker
catches up on everything: the stall watchdog, on a broker frozen under the worker (SIGSTOP: its
connections stay open and nothing ever answers, as in the hang after a broker restart that
RELIABILITY.md describes).

The broker is one of this folder's own: the shared broker on 19092 is never frozen.
"""

from __future__ import annotations

import uuid

import httpx
import msgspec
import pytest

from tests.reliability.conftest import WORKER_TEST_SETTINGS, LaunchWorker, topics_on
from tests.reliability.kafka_io import StreamProducer, read_all, wait_until_committed
from tests.reliability.streams import chunks, issue_events
from tests.support.own_servers import OwnKafkaBroker
from tests.worker.conftest import stored_project
from tests.worker.processes import wait_for
from worker.stall_watchdog import EXIT_STALLED

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]

PARTITIONS = 2
# More than the worker fetches ahead (4 MiB a partition), so events still wait at the freeze.
EVENTS = 30_000
STALL_LIMIT_SECONDS = 10


async def test_a_stalled_worker_exits_and_a_fresh_one_catches_up_exactly(
    sqlite_url: str, own_kafka: OwnKafkaBroker, launch_worker: LaunchWorker
) -> None:
    project = await stored_project(sqlite_url)
    events, stream = issue_events(project, EVENTS, issues=20, partitions=PARTITIONS)
    bootstrap = own_kafka.bootstrap
    group = f"group-{uuid.uuid4().hex}"
    async with (
        topics_on(bootstrap, PARTITIONS) as topics,
        StreamProducer(bootstrap, topics.exception_events) as producer,
    ):
        for chunk in chunks(stream, 1_000):
            await producer.send(chunk)
        watched = launch_worker(
            sqlite_url,
            bootstrap,
            topics,
            group,
            settings_env={**WORKER_TEST_SETTINGS, "STALL_LIMIT_SECONDS": str(STALL_LIMIT_SECONDS)},
            # Small batches: the worker is still far from the end when its lag is first reported.
            batch_max_events=10,
        )
        await watched.wait_until_serving()

        async def lag_known_mid_stream() -> bool:
            samples = await watched.metrics()
            lag = sum(v for k, v in samples.items() if k.startswith("spikewatch_consumer_lag"))
            return lag > 0 and samples["spikewatch_events_consumed_total"] > 0

        await wait_for(
            "the worker to report its lag",
            lag_known_mid_stream,
            timeout_seconds=60,
            workers=[watched],
        )
        own_kafka.freeze()
        try:
            seen: dict[str, float] = {"waiting": 0.0}

            async def exited() -> bool:
                if not watched.running:
                    return True
                try:
                    samples = await watched.metrics()
                except httpx.HTTPError:  # exiting right now
                    return False
                seen["waiting"] = max(seen["waiting"], samples["spikewatch_events_waiting"])
                return False

            await wait_for(
                "the stalled worker to exit",
                exited,
                timeout_seconds=STALL_LIMIT_SECONDS + 60,
                workers=[watched],
            )
        finally:
            own_kafka.thaw()
        stall_log = watched.log_tail(200)

        fresh = launch_worker(sqlite_url, bootstrap, topics, group)
        await wait_until_committed(
            bootstrap, group, producer.end_offsets(), timeout_seconds=180, workers=[fresh]
        )
        accepted = await read_all(bootstrap, topics.accepted)
        dead = await read_all(bootstrap, topics.dead_letter)

    assert watched.exit_code == EXIT_STALLED, stall_log
    assert "stalled: no offset committed for" in stall_log
    # Before it gave up, its /metrics showed events waiting (read from the broker before the
    # freeze: while it is frozen, the last figures stand).
    assert seen["waiting"] > 0
    assert fresh.running
    forwarded = [msgspec.json.decode(record.value)["uuid"] for record in accepted]
    # Forwarding may repeat what the stalled worker sent but never committed; nothing is missing.
    assert set(forwarded) == {event["uuid"] for event in events}
    assert dead == []
