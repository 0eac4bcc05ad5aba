"""Spike detection in the pipeline, on the real databases and Redis with the wall clock injected:
a burst over its issue's history is stored and published once with its exact numbers, the snooze
silences a second crossing, and a spike whose publish failed is emitted by a later batch."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import SpikeEventMessage, SpikeIssue
from schemas.tables import SpikeDetectionConfig, SpikeEvent
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event, iso
from tests.worker.pipelines import (
    BUCKET_SECONDS,
    BUCKET_START,
    NOW,
    SPIKE_TOPIC,
    KeptMessages,
    build_pipeline,
    messages,
)
from worker.outcomes import Outcome
from worker.pipeline import Pipeline
from worker.spike_events import spike_event_id

pytestmark = pytest.mark.redis

THRESHOLD, MULTIPLIER = 20, 3


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class Stream:
    """Feeds a pipeline events of one project, offsets in order on one partition."""

    def __init__(self, pipeline: Pipeline, project_id: int) -> None:
        self.pipeline = pipeline
        self.project_id = project_id
        self.offset = 0

    async def send(self, error_type: str, count: int, *, buckets_back: int = 0) -> Any:
        timestamp = iso(NOW - buckets_back * BUCKET_SECONDS)
        payloads = [
            encode(exception_event(self.project_id, error_type=error_type, timestamp=timestamp))
            for _ in range(count)
        ]
        records = await self.pipeline.process(messages(*payloads, first_offset=self.offset))
        self.offset += count
        assert {r.outcome for r in records} == {Outcome.FORWARDED}
        return records[0].issue_id


async def spiking_project(engine: AsyncEngine, project_id: int) -> None:
    await add_projects(engine, project_id)
    async with engine.begin() as connection:
        await connection.execute(
            insert(SpikeDetectionConfig),
            [
                {
                    "project_id": project_id,
                    "threshold": THRESHOLD,
                    "multiplier": MULTIPLIER,
                    "snooze_duration_minutes": 10,
                }
            ],
        )


async def spike_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(select(SpikeEvent)))


async def test_a_burst_over_its_history_is_stored_and_published_once_with_its_numbers(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await spiking_project(engine, project)
    sent = KeptMessages()
    stream = Stream(build_pipeline(engine, redis_client, sent=sent), project)
    emitted_before = metric("spikewatch_spikes_emitted_total")
    # History of the bursting issue: two non-empty buckets among the eleven, mean 3.5.
    burst_issue = await stream.send("ValueError", 2, buckets_back=5)
    await stream.send("ValueError", 5, buckets_back=2)
    # A steady issue beside it, under the threshold in every bucket.
    for back in range(11, -1, -1):
        await stream.send("KeyError", 4, buckets_back=back)

    await stream.send("ValueError", THRESHOLD - 1)
    assert sent.spikes() == []
    await stream.send("ValueError", 1)

    expected = SpikeEventMessage(
        id=str(spike_event_id(str(burst_issue), BUCKET_START)),
        project_id=project,
        issue=SpikeIssue(str(burst_issue), "ValueError", "x is undefined"),
        detected_at=iso(NOW).replace("Z", "+00:00"),
        computed_baseline=3.5,
        current_bucket_value=THRESHOLD,
        bucket_start=iso(BUCKET_START).replace("Z", "+00:00"),
        threshold=THRESHOLD,
        multiplier=MULTIPLIER,
    )
    assert sent.spikes() == [expected]
    [message] = sent.messages
    assert (message.topic, message.key) == (SPIKE_TOPIC, str(burst_issue).encode())
    [row] = await spike_rows(engine)
    assert (row.id, row.project_id, row.issue_id) == (uuid.UUID(expected.id), project, burst_issue)
    assert (row.computed_baseline, row.current_bucket_value) == (3.5, THRESHOLD)
    assert (row.threshold, row.multiplier) == (THRESHOLD, MULTIPLIER)
    assert (row.bucket_start.timestamp(), row.detected_at.timestamp()) == (BUCKET_START, NOW)
    assert metric("spikewatch_spikes_emitted_total") == emitted_before + 1


async def test_a_second_crossing_inside_the_snooze_emits_nothing(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await spiking_project(engine, project)
    sent = KeptMessages()
    stream = Stream(build_pipeline(engine, redis_client, sent=sent), project)
    await stream.send("ValueError", THRESHOLD)
    snoozed_before = metric("spikewatch_spikes_snoozed_total")

    await stream.send("ValueError", THRESHOLD)
    # Another worker, same issue: the snooze lock lives in Redis, not in a worker.
    other = Stream(build_pipeline(engine, redis_client, sent=sent), project)
    other.offset = stream.offset
    await other.send("ValueError", 1)

    assert [s.current_bucket_value for s in sent.spikes()] == [THRESHOLD]
    assert metric("spikewatch_spikes_snoozed_total") == snoozed_before + 2
    assert len(await spike_rows(engine)) == 1


async def test_a_spike_whose_publish_failed_is_emitted_by_a_later_batch_and_stored_once(
    engine: AsyncEngine, redis_client: Redis, project_ids: list[int]
) -> None:
    project, _, _ = project_ids
    await spiking_project(engine, project)
    sent = KeptMessages(refusals=1)
    stream = Stream(build_pipeline(engine, redis_client, sent=sent), project)

    await stream.send("ValueError", THRESHOLD)
    assert sent.spikes() == []
    await stream.send("ValueError", 1)

    [spike] = sent.spikes()
    assert spike.current_bucket_value == THRESHOLD + 1
    # The retry is the same spike (same issue and bucket, so same id): the row stored by the
    # failed attempt stays the only one.
    [row] = await spike_rows(engine)
    assert (str(row.id), row.current_bucket_value) == (spike.id, THRESHOLD)
