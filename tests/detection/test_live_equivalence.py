"""`spikewatch detect` runs the worker's own decision: a trace replayed through Kafka and a real
worker process (on a clock the test moves bucket by bucket) gives exactly the spikes the command
prints for it, under both detectors, each chosen through the HTTP API."""

from __future__ import annotations

import asyncio
import pathlib
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from typer.testing import CliRunner

from schemas.db import make_engine
from schemas.events import SpikeEventMessage
from schemas.redis_keys import project_tag
from spikewatch.cli import app
from spikewatch.detection.replay import spike_line
from spikewatch.detection.traces import Trace, write_trace
from tests.worker import processes
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event, iso
from tests.worker.operator_api import error_tracking, operator_api
from tests.worker.processes import Topics, WorkerProcess, create_topics, delete_topics, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

BUCKET_SECONDS = 300
TRACE_START = 1_800_000_000  # a bucket start
# Spike settings low enough for a short trace; the snooze covers the bucket after a spike.
MULTIPLIER, THRESHOLD, SNOOZE_MINUTES = 3, 3, 10
# Two hours: a steady issue with bursts a few buckets apart (the second and third fall within the
# mean's window of the first), a silence, and a return with a handful of events.
TRACE = (
    [5, 5, 4, 6, 5, 5, 4, 5, 6, 5, 5, 60, 55, 30, 5, 4, 60, 6, 5, 60]
    + [5, 5, 5, 5, 6, 5, 4, 0, 0, 0]
    + [0] * 10
    + [4, 0, 2, 0, 0, 40]
)
CONSUMED_TIMEOUT_SECONDS = 60


def detect_lines(trace_path: pathlib.Path, detector: str) -> list[str]:
    result = CliRunner().invoke(
        app,
        [
            "detect",
            str(trace_path),
            "--detector",
            detector,
            "--multiplier",
            str(MULTIPLIER),
            "--threshold",
            str(THRESHOLD),
            "--snooze",
            str(SNOOZE_MINUTES),
        ],
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


async def configure(database_url: str, redis_url: str, project_id: int, detector: str) -> None:
    async with operator_api(database_url, redis_url, [project_id]) as api:
        response = await api.patch(
            f"{error_tracking(project_id)}/spike_detection_config/update_config/",
            json={
                "detector": detector,
                "multiplier": MULTIPLIER,
                "threshold": THRESHOLD,
                "snooze_duration_minutes": SNOOZE_MINUTES,
            },
        )
        assert response.status_code == 200, response.text


async def produce_bucket(producer: AIOKafkaProducer, topic: str, values: Sequence[bytes]) -> None:
    """One record batch, so the worker fetches the bucket's events in one batch, as the replay
    assumes (a batch split mid-bucket would decide on part of the bucket first)."""
    sent = [await producer.send(topic, value, partition=0) for value in values]
    await producer.flush()
    await asyncio.gather(*sent)


async def wait_until_consumed(worker: WorkerProcess, total: int) -> None:
    deadline = time.monotonic() + CONSUMED_TIMEOUT_SECONDS
    while (await worker.metrics())["spikewatch_events_consumed_total"] < total:
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker never consumed {total} events:\n{worker.log_tail()}")
        await asyncio.sleep(0.05)


async def move_snoozes(redis: Redis, project_ids: Sequence[int], seconds: int) -> None:
    """Redis keeps time by its own clock; the snooze locks must age with the test's."""
    for project_id in project_ids:
        async for key in redis.scan_iter(match=f"{project_tag(project_id)}:snooze:*"):
            left_ms = await redis.pttl(key)
            if left_ms - seconds * 1000 <= 0:
                await redis.delete(key)
            else:
                await redis.pexpire(key, left_ms - seconds * 1000)


async def test_a_trace_through_kafka_and_a_live_worker_gives_the_spikes_detect_prints(
    sqlite_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: Redis,
    project_ids: list[int],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mean_project, adaptive_project, _ = project_ids
    detector_of = {mean_project: "mean", adaptive_project: "adaptive"}
    engine = make_engine(sqlite_url)
    await add_projects(engine, mean_project, adaptive_project)
    await engine.dispose()
    for project_id, detector in detector_of.items():
        await configure(sqlite_url, redis_url, project_id, detector)
    trace_path = tmp_path / "trace.csv"
    write_trace(trace_path, Trace(BUCKET_SECONDS, TRACE_START // BUCKET_SECONDS, TRACE))
    expected = {p: detect_lines(trace_path, d) for p, d in detector_of.items()}
    # The trace tells the detectors apart, so the worker's choice of detector is checked too.
    assert expected[mean_project] != expected[adaptive_project]
    assert all(expected.values())

    clock_file = tmp_path / "clock"
    clock_file.write_text(repr(float(TRACE_START)))
    monkeypatch.setenv("SPIKEWATCH_TEST_CLOCK_FILE", str(clock_file))
    monkeypatch.setitem(
        processes.ENTRY_POINTS, "clocked", [sys.executable, "-m", "tests.detection.clocked_worker"]
    )
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    worker = WorkerProcess(
        entry_point="clocked",
        database_url=sqlite_url,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        topics=topics,
        consumer_group=f"group-{uuid.uuid4().hex}",
        workdir=tmp_path,
        batch_max_events=1000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, max_batch_size=1_000_000, linger_ms=20
    )
    try:
        await worker.wait_until_serving()
        await producer.start()
        consumed = 0
        for index, count in enumerate(TRACE):
            bucket_start = TRACE_START + index * BUCKET_SECONDS
            # The worker's "now" is one second into the bucket, as its events' timestamps.
            clock_file.write_text(repr(float(bucket_start + 1)))
            events = [
                encode(exception_event(project_id, timestamp=iso(bucket_start + 1)))
                for project_id in detector_of
                for _ in range(count)
            ]
            if events:
                await produce_bucket(producer, topics.exception_events, events)
                consumed += len(events)
                await wait_until_consumed(worker, consumed)
            await move_snoozes(redis_client, list(detector_of), BUCKET_SECONDS)

        records = await read_topic(
            kafka_bootstrap,
            topics.spikes,
            expected=sum(len(lines) for lines in expected.values()),
            timeout_seconds=30,
            settle_seconds=3.0,
        )
        spikes = [msgspec.json.decode(r.value, type=SpikeEventMessage) for r in records]
        live = {
            project_id: [
                spike_line(
                    datetime.fromisoformat(s.bucket_start).timestamp(),
                    s.current_bucket_value,
                    s.computed_baseline,
                )
                for s in spikes
                if s.project_id == project_id
            ]
            for project_id in detector_of
        }
        assert live == expected, worker.log_tail()
    finally:
        await producer.stop()
        worker.stop()
        await delete_topics(kafka_bootstrap, topics)
