"""`spikes tail` against the real Kafka: two spikes produced, two readable lines printed.

It sits with the Redis-stage tests because spike events are their output; it needs Kafka only.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.events import SpikeEventMessage, SpikeIssue
from worker.spikes_tail import tail_spikes

pytestmark = pytest.mark.kafka


def spike(issue_name: str | None, current: int, baseline: float) -> SpikeEventMessage:
    return SpikeEventMessage(
        id="5b0c2a8e-3f55-5d7e-9a43-0d6f1c2b7e11",
        project_id=7,
        issue=SpikeIssue("0f7c61d4-1e2b-4c0a-9d8e-2f3a4b5c6d7e", issue_name, None),
        detected_at="2027-01-15T08:00:10+00:00",
        computed_baseline=baseline,
        current_bucket_value=current,
        bucket_start="2027-01-15T08:00:00+00:00",
        threshold=500,
        multiplier=10,
    )


@pytest.fixture
async def spike_topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    topic = f"test_spikes_tail_{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        yield topic
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def test_tail_prints_one_readable_line_per_spike(
    kafka_bootstrap: str, spike_topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(spike_topic, b"not a spike event")
        for event in (spike("TypeError", 1200, 10.5), spike(None, 640, 0.0)):
            await producer.send_and_wait(spike_topic, msgspec.json.encode(event))
    finally:
        await producer.stop()
    out = io.StringIO()

    printed = await asyncio.wait_for(
        tail_spikes(kafka_bootstrap, spike_topic, from_beginning=True, out=out, max_events=2),
        timeout=60,
    )

    assert printed == 2
    assert out.getvalue().splitlines() == [
        "2027-01-15T08:00:10+00:00  project 7  TypeError  current 1200 vs baseline 10.5 × 10 = 105"
        "  (issue 0f7c61d4-1e2b-4c0a-9d8e-2f3a4b5c6d7e, bucket 2027-01-15T08:00:00+00:00)",
        "2027-01-15T08:00:10+00:00  project 7  (unnamed issue)  current 640 vs baseline 0 × 10 = 0"
        "  (issue 0f7c61d4-1e2b-4c0a-9d8e-2f3a4b5c6d7e, bucket 2027-01-15T08:00:00+00:00)",
    ]
