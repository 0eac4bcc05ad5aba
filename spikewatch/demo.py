"""The demo: a realistic stream into a running worker and API, ending with a real spike.

It plays an ingestion pipeline (a steady background of errors over the last hour) and an alerting
system (subscribed to the spike topic), then reads the same spike back through the HTTP API. It
only talks to the running services: Kafka, the API over HTTP, and the database and Redis for
set-up.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from schemas.events import SpikeEventMessage
from schemas.redis_keys import project_tag
from schemas.settings import Settings

BACKGROUND_ISSUES = (
    ("TypeError", "Cannot read properties of undefined (reading 'id')", "app/views.py", "index"),
    ("KeyError", "'user'", "app/session.py", "load_user"),
    ("ValueError", "invalid literal for int() with base 10: ''", "app/forms.py", "clean_age"),
    ("TimeoutError", "upstream took longer than 30s", "app/clients/payments.py", "charge"),
    ("AttributeError", "'NoneType' object has no attribute 'email'", "app/mail.py", "notify"),
)
BURST_ISSUE = ("ZeroDivisionError", "division by zero", "app/checkout/totals.py", "unit_price")
BACKGROUND_EVENTS_PER_ISSUE_PER_BUCKET = 20
BURST_EVENTS = 600
SPIKE_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class DemoResult:
    project_id: int
    spike: SpikeEventMessage
    seconds_to_spike: float
    api_spikes: list[dict[str, Any]]
    stack_frame_count: int


def exception_event(
    project_id: int, kind: tuple[str, str, str, str], timestamp: float, release: str
) -> dict[str, Any]:
    exc_type, value, filename, function = kind
    return {
        "uuid": str(uuid.uuid4()),
        "project_id": project_id,
        "timestamp": datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z"),
        "event": "$exception",
        "distinct_id": f"user-{uuid.uuid4().int % 500}",
        "properties": {
            "$exception_list": [
                {
                    "type": exc_type,
                    "value": value,
                    "mechanism": {"handled": False, "type": "generic", "synthetic": False},
                    "stacktrace": {
                        "type": "resolved",
                        "frames": [
                            {
                                "platform": "python",
                                "filename": "app/wsgi.py",
                                "function": "handle_request",
                                "lineno": 41,
                                "in_app": True,
                                "resolved": True,
                            },
                            {
                                "platform": "python",
                                "filename": filename,
                                "function": function,
                                "lineno": 17,
                                "colno": 8,
                                "in_app": True,
                                "resolved": True,
                            },
                        ],
                    },
                }
            ],
            "$release": release,
            "$current_url": "https://shop.example/checkout",
        },
    }


def background_events(
    project_id: int, now: float, bucket_seconds: int, history_buckets: int
) -> list[dict[str, Any]]:
    """A steady hour: every background issue errors at the same pace in every bucket."""
    events = []
    for bucket in range(history_buckets, -1, -1):
        bucket_start = (int(now) // bucket_seconds - bucket) * bucket_seconds
        for i in range(BACKGROUND_EVENTS_PER_ISSUE_PER_BUCKET):
            # Spread over the first minute of the bucket, never past "now".
            timestamp = min(bucket_start + 1 + i * 3, now)
            events.extend(
                exception_event(project_id, kind, timestamp, "v1.4.2") for kind in BACKGROUND_ISSUES
            )
    return events


class ApiClient:
    def __init__(self, base_url: str, key: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._key = key

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None


async def produce(producer: AIOKafkaProducer, topic: str, events: list[dict[str, Any]]) -> None:
    key = str(events[0]["project_id"]).encode()
    sends = [await producer.send(topic, json.dumps(e).encode(), key=key) for e in events]
    await asyncio.gather(*sends)


async def wait_for_spike(
    consumer: AIOKafkaConsumer, project_id: int, deadline: float
) -> SpikeEventMessage:
    decoder = msgspec.json.Decoder(SpikeEventMessage)
    while time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            for message in messages:
                spike = decoder.decode(message.value)
                if spike.project_id == project_id:
                    return spike
    raise TimeoutError(f"no spike for project {project_id} within {SPIKE_WAIT_SECONDS:.0f}s")


async def forget_counts(redis_url: str, project_id: int) -> None:
    """Remove what Redis holds under the project's id (counts, watermarks, snoozes): a database
    reset hands out ids again, and a new project must not inherit an old one's history."""
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{project_tag(project_id)}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def run_demo(settings: Settings, api: ApiClient, project_id: int, out: TextIO) -> DemoResult:
    await forget_counts(settings.redis_url, project_id)
    base = f"/api/projects/{project_id}/error_tracking"
    config = api.request("GET", f"{base}/spike_detection_config/")
    out.write(
        f"spike detection: threshold {config['threshold']}, multiplier {config['multiplier']}, "
        f"snooze {config['snooze_duration_minutes']} min\n"
    )
    api.request(
        "POST", f"{base}/releases/", {"version": "1.4.2", "project": "shop", "hash_id": "v1.4.2"}
    )

    consumer = AIOKafkaConsumer(
        settings.topic_spike_events,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="latest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        await consumer.seek_to_end()
        now = time.time()
        background = background_events(
            project_id, now, settings.bucket_size_seconds, settings.history_buckets
        )
        await produce(producer, settings.topic_exception_events, background)
        out.write(
            f"produced {len(background)} background events: {len(BACKGROUND_ISSUES)} issues, "
            f"{BACKGROUND_EVENTS_PER_ISSUE_PER_BUCKET} per issue in each 5-minute bucket of the "
            "last hour\n"
        )
        await asyncio.sleep(2.0)  # let the worker take the background before the burst
        burst = [
            exception_event(project_id, BURST_ISSUE, time.time(), "v1.4.2")
            for _ in range(BURST_EVENTS)
        ]
        burst_started = time.monotonic()
        await produce(producer, settings.topic_exception_events, burst)
        out.write(f"produced a burst of {BURST_EVENTS} {BURST_ISSUE[0]} events\n")
        spike = await wait_for_spike(consumer, project_id, burst_started + SPIKE_WAIT_SECONDS)
        seconds_to_spike = time.monotonic() - burst_started
    finally:
        await producer.stop()
        await consumer.stop()

    api_spikes = await _spikes_from_api(api, base, spike.id)
    frames = api.request("GET", f"{base}/stack_frames/?limit=1")
    return DemoResult(project_id, spike, seconds_to_spike, api_spikes, frames["count"])


async def _spikes_from_api(api: ApiClient, base: str, spike_id: str) -> list[dict[str, Any]]:
    """The spike as the API lists it, once the worker's database write is visible."""
    for _ in range(50):
        results = api.request("GET", f"{base}/spike_events/")["results"]
        if any(row["id"] == spike_id for row in results):
            return results
        await asyncio.sleep(0.1)
    raise TimeoutError(f"spike {spike_id} is on the topic but not in the API after 5s")
