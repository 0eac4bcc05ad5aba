"""Spike detection end to end: real worker processes on the real Kafka broker, Redis and a migrated
database, the spike rule set through the HTTP API. A burst over its issue's history gives exactly
one spike on the spike topic and one row in the API, the snooze silences a second crossing, and
two workers sharing a burst over four partitions still give one spike."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from schemas.db import make_engine
from schemas.events import SpikeEventMessage, SpikeIssue
from schemas.settings import Settings
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event, iso
from tests.worker.operator_api import error_tracking, operator_api, wait_for_room_in_bucket
from tests.worker.processes import (
    KafkaRecord,
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

BUCKET_SECONDS = Settings().bucket_size_seconds
# Worker start-up, the events' round trip and the settle time all fit well within this.
SECONDS_NEEDED_IN_BUCKET = 45
DELIVERY_TIMEOUT_SECONDS = 60


async def configure_spikes(
    database_url: str, redis_url: str, project_id: int, **config: int
) -> None:
    async with operator_api(database_url, redis_url, [project_id]) as api:
        response = await api.patch(
            f"{error_tracking(project_id)}/spike_detection_config/update_config/", json=config
        )
        assert response.status_code == 200, response.text


async def api_spike_events(database_url: str, redis_url: str, project_id: int) -> list[Any]:
    async with operator_api(database_url, redis_url, [project_id]) as api:
        response = await api.get(f"{error_tracking(project_id)}/spike_events/")
        assert response.status_code == 200, response.text
        return response.json()["results"]


async def read_spikes(bootstrap: str, topics: Topics, expected: int) -> list[KafkaRecord]:
    # A longer settle than for events: a duplicate spike would come from a later batch.
    return await read_topic(
        bootstrap,
        topics.spikes,
        expected=expected,
        timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
        settle_seconds=4.0,
    )


def decoded(records: list[KafkaRecord]) -> list[SpikeEventMessage]:
    return [msgspec.json.decode(r.value, type=SpikeEventMessage) for r in records]


async def started(worker: WorkerProcess) -> WorkerProcess:
    await worker.wait_until_serving()
    return worker


async def test_background_and_burst_give_exactly_one_spike_on_the_topic_and_in_the_api(
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
    await configure_spikes(sqlite_url, redis_url, project, threshold=20, multiplier=3)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    try:
        worker = await started(start_worker(sqlite_url, topics, f"group-{uuid.uuid4().hex}"))
        now = await wait_for_room_in_bucket(BUCKET_SECONDS, SECONDS_NEEDED_IN_BUCKET)
        bucket_start = int(now) // BUCKET_SECONDS * BUCKET_SECONDS

        def at(buckets_back: int, error_type: str) -> dict[str, Any]:
            timestamp = iso(bucket_start - buckets_back * BUCKET_SECONDS + 1)
            return exception_event(project, error_type=error_type, timestamp=timestamp)

        # The bursting issue had two non-empty buckets in the last hour (mean 3.5); a steady
        # issue beside it has 4 events in every bucket, the current one included.
        history = {5: 2, 2: 5}
        background = [at(back, "ValueError") for back, n in history.items() for _ in range(n)]
        background += [at(back, "KeyError") for back in range(11, -1, -1) for _ in range(4)]
        burst = [at(0, "ValueError") for _ in range(20)]
        await produce(
            kafka_bootstrap,
            topics.exception_events,
            [(0, None, encode(event)) for event in background + burst],
        )

        [record] = await read_spikes(kafka_bootstrap, topics, expected=1)
        [spike] = decoded([record])
        issue_id = spike.issue.id
        assert record.key == issue_id.encode()
        assert spike.issue == SpikeIssue(issue_id, "ValueError", "x is undefined")
        assert (spike.project_id, spike.threshold, spike.multiplier) == (project, 20, 3)
        assert (spike.computed_baseline, spike.current_bucket_value) == (3.5, 20)
        assert spike.bucket_start == iso(bucket_start).replace("Z", "+00:00")
        # Stored before it was published: whoever hears of it can read it back at once.
        [row] = await api_spike_events(sqlite_url, redis_url, project)
        assert (row["id"], row["issue"]["id"]) == (spike.id, issue_id)
        assert (row["computed_baseline"], row["current_bucket_value"]) == (3.5, 20)

        async def all_counted() -> bool:
            samples = await worker.metrics()
            return samples["spikewatch_events_consumed_total"] == len(background) + len(burst)

        await wait_for("the metrics", all_counted, timeout_seconds=15, workers=[worker])
        assert (await worker.metrics())["spikewatch_spikes_emitted_total"] == 1
    finally:
        await delete_topics(kafka_bootstrap, topics)


async def test_a_second_crossing_inside_the_snooze_emits_nothing(
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
    await configure_spikes(sqlite_url, redis_url, project, threshold=10, multiplier=1)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    try:
        worker = await started(start_worker(sqlite_url, topics, f"group-{uuid.uuid4().hex}"))
        now = await wait_for_room_in_bucket(BUCKET_SECONDS, SECONDS_NEEDED_IN_BUCKET)

        async def send(error_type: str, count: int) -> None:
            events = [
                exception_event(project, error_type=error_type, timestamp=iso(now))
                for _ in range(count)
            ]
            await produce(
                kafka_bootstrap, topics.exception_events, [(0, None, encode(e)) for e in events]
            )

        await send("ValueError", 10)
        [first] = decoded(await read_spikes(kafka_bootstrap, topics, expected=1))
        # The snoozed issue crosses again; an issue beside it shows that spikes still flow.
        await send("ValueError", 10)
        await send("KeyError", 10)
        spikes = decoded(await read_spikes(kafka_bootstrap, topics, expected=2))

        assert [(s.issue.name, s.current_bucket_value) for s in spikes] == [
            ("ValueError", 10),
            ("KeyError", 10),
        ]
        assert spikes[0] == first
        samples = await worker.metrics()
        assert samples["spikewatch_spikes_emitted_total"] == 2
        assert samples["spikewatch_spikes_snoozed_total"] >= 1
        assert len(await api_spike_events(sqlite_url, redis_url, project)) == 2
    finally:
        await delete_topics(kafka_bootstrap, topics)


@pytest.mark.postgres
async def test_two_workers_sharing_a_burst_over_four_partitions_emit_exactly_one_spike(
    postgres_database_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    project_ids: list[int],
    start_worker: Any,
) -> None:
    project, _, _ = project_ids
    engine = make_engine(postgres_database_url)
    await add_projects(engine, project)
    await engine.dispose()
    await configure_spikes(postgres_database_url, redis_url, project, threshold=20, multiplier=2)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=4)
    workers: list[WorkerProcess] = []
    try:
        group = f"group-{uuid.uuid4().hex}"
        for _ in range(2):
            workers.append(await started(start_worker(postgres_database_url, topics, group)))

        async def partitions_split() -> bool:
            first, second = [await w.assigned_partitions() for w in workers]
            return bool(first) and bool(second) and first | second == {0, 1, 2, 3}

        await wait_for(
            "both workers to share the partitions",
            partitions_split,
            timeout_seconds=45,
            workers=workers,
        )
        now = await wait_for_room_in_bucket(BUCKET_SECONDS, SECONDS_NEEDED_IN_BUCKET)
        # One issue on every partition (explicit partitions; by key they would share one), four
        # times the threshold: both workers see the issue over it.
        burst = [
            exception_event(project, error_type="ValueError", timestamp=iso(now)) for _ in range(80)
        ]
        await produce(
            kafka_bootstrap,
            topics.exception_events,
            [(n % 4, str(project).encode(), encode(e)) for n, e in enumerate(burst)],
        )

        spikes = decoded(await read_spikes(kafka_bootstrap, topics, expected=1))

        assert len(spikes) == 1, [w.log_tail() for w in workers]
        assert 20 <= spikes[0].current_bucket_value <= 80
        [row] = await api_spike_events(postgres_database_url, redis_url, project)
        assert row["id"] == spikes[0].id

        async def all_counted() -> bool:
            counted = [(await w.metrics())["spikewatch_events_consumed_total"] for w in workers]
            return sum(counted) == len(burst)

        await wait_for("the metrics", all_counted, timeout_seconds=15, workers=workers)
        samples = [await w.metrics() for w in workers]
        assert all(outcome_counts(s)["forwarded"] > 0 for s in samples)
        assert sum(s["spikewatch_spikes_emitted_total"] for s in samples) == 1
        # No batch holds more than 60 of the 80 events, so the last one counted saw the issue
        # over the threshold after another batch had spiked: its crossing met the snooze lock.
        assert sum(s["spikewatch_spikes_snoozed_total"] for s in samples) >= 1
    finally:
        # Before their topics go: a worker of a group whose topic vanished can take the whole
        # shutdown grace period to stop.
        for worker in workers:
            worker.stop()
        await delete_topics(kafka_bootstrap, topics)
