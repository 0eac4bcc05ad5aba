"""Detection latency: with the worker live under a steady background stream, inject bursts of new
issues (one manual fingerprint each, each in a project of its own with a low spike threshold) and
time each from producing the event that crosses the threshold to its spike being appended to the
spike topic.

The spike topic stamps records with the broker's append time, so a slow reader here cannot inflate
the figure. A spike maps back to its burst through its issue's fingerprint in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.database import fingerprints_of_issues
from bench.generator import GeneratedEvent, small_event, utc_timestamp
from bench.kafka_io import INPUT_PARTITIONS, bulk_producer
from bench.results import DetectionLatency
from schemas.events import SpikeEventMessage

BACKGROUND_TICK_SECONDS = 0.05
# Bursts start this long after the background and end this long before it stops.
BURST_MARGIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class LatencyPlan:
    bursts: int
    threshold: int
    background_events_per_second: float
    background_seconds: float
    spike_wait_seconds: float
    label: str

    def fingerprint(self, burst: int) -> str:
        return f"bench-{self.label}-burst-{burst:02d}"


async def measure_detection_latency(
    plan: LatencyPlan,
    *,
    burst_projects: Sequence[int],
    bootstrap: str,
    input_topic: str,
    spike_topic: str,
    database_url: str,
    background: Iterator[GeneratedEvent],
) -> DetectionLatency:
    """Run the background and the bursts, then match spikes to bursts; ``background`` must yield
    at least rate x duration events."""
    # issue id -> append time (seconds since the epoch) of its first spike.
    first_spike_at: dict[str, float] = {}
    consumer = await _spike_consumer_at_end(bootstrap, spike_topic)
    listener = asyncio.create_task(_record_spikes(consumer, first_spike_at))
    background_task = asyncio.create_task(
        _produce_background(plan, bootstrap, input_topic, background)
    )
    try:
        crossed_at = await _inject_bursts(plan, burst_projects, bootstrap, input_topic)
        background_sent, background_elapsed = await background_task
        issue_fingerprints = await _wait_for_burst_spikes(
            plan, database_url, set(crossed_at), first_spike_at, listener
        )
    finally:
        for task in (background_task, listener):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await consumer.stop()
    latencies = [
        first_spike_at[issue_id] - crossed_at[fingerprint]
        for issue_id, fingerprint in issue_fingerprints.items()
        if fingerprint in crossed_at
    ]
    return DetectionLatency(
        bursts=plan.bursts,
        threshold=plan.threshold,
        background_events_per_second=background_sent / background_elapsed,
        requested_events_per_second=plan.background_events_per_second,
        background_events=background_sent,
        latencies_seconds=sorted(latencies),
        bursts_without_spike=plan.bursts - len(latencies),
        other_spikes=len(first_spike_at) - len(latencies),
    )


async def _wait_for_burst_spikes(
    plan: LatencyPlan,
    database_url: str,
    burst_fingerprints: set[str],
    first_spike_at: dict[str, float],
    listener: asyncio.Task[None],
) -> dict[str, str]:
    """Until every burst has its spike or the wait is over: the fingerprint of each spiked issue."""
    deadline = time.monotonic() + plan.spike_wait_seconds
    while True:
        if listener.done():
            # A spike the bench cannot read is a failure of this part, not a missing spike.
            listener.result()
            raise RuntimeError("the spike listener stopped")
        issue_fingerprints = await fingerprints_of_issues(database_url, list(first_spike_at))
        if burst_fingerprints <= set(issue_fingerprints.values()) or time.monotonic() > deadline:
            return issue_fingerprints
        await asyncio.sleep(0.5)


async def _spike_consumer_at_end(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A reader of spikes appended from now on (spikes of the earlier parts are not this part's)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(INPUT_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def _record_spikes(consumer: AIOKafkaConsumer, first_spike_at: dict[str, float]) -> None:
    decoder = msgspec.json.Decoder(SpikeEventMessage)
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            for message in messages:
                issue_id = decoder.decode(message.value).issue.id
                first_spike_at.setdefault(issue_id, message.timestamp / 1000)


async def _produce_background(
    plan: LatencyPlan, bootstrap: str, topic: str, events: Iterator[GeneratedEvent]
) -> tuple[int, float]:
    """Send ``rate`` events a second, a tick's worth at a time, for the planned duration; returns
    (events sent, seconds taken) since a saturated machine may fall behind the rate."""
    per_tick = plan.background_events_per_second * BACKGROUND_TICK_SECONDS
    ticks = round(plan.background_seconds / BACKGROUND_TICK_SECONDS)
    producer = bulk_producer(bootstrap)
    await producer.start()
    sent, owed = 0, 0.0
    started = time.monotonic()
    try:
        pending: list[asyncio.Future] = []
        for tick in range(ticks):
            owed += per_tick
            while owed >= 1:
                event = next(events)
                pending.append(await producer.send(topic, event.value, key=event.key))
                owed -= 1
                sent += 1
            await asyncio.gather(*pending)
            pending.clear()
            await asyncio.sleep(
                max(0.0, started + (tick + 1) * BACKGROUND_TICK_SECONDS - time.monotonic())
            )
    finally:
        await producer.stop()
    return sent, time.monotonic() - started


async def _inject_bursts(
    plan: LatencyPlan, burst_projects: Sequence[int], bootstrap: str, topic: str
) -> dict[str, float]:
    """Send each burst, its last event alone once the others are acknowledged; returns, per burst
    fingerprint, the wall-clock time just before the threshold-crossing event was sent."""
    span = max(plan.background_seconds - 2 * BURST_MARGIN_SECONDS, 0.0)
    interval = span / max(plan.bursts - 1, 1)
    if len(burst_projects) < plan.bursts:
        raise ValueError(f"{plan.bursts} bursts need as many projects, not {len(burst_projects)}")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    crossed_at = {}
    started = time.monotonic()
    try:
        for burst in range(plan.bursts):
            await asyncio.sleep(
                max(0.0, started + BURST_MARGIN_SECONDS + burst * interval - time.monotonic())
            )
            fingerprint = plan.fingerprint(burst)
            burst_project = burst_projects[burst]
            key = str(burst_project).encode()
            timestamp = utc_timestamp()
            values = [
                small_event(burst_project, fingerprint, str(uuid.uuid4()), timestamp)
                for _ in range(plan.threshold)
            ]
            await asyncio.gather(
                *[await producer.send(topic, value, key=key) for value in values[:-1]]
            )
            crossed_at[fingerprint] = time.time()
            await producer.send_and_wait(topic, values[-1], key=key)
    finally:
        await producer.stop()
    return crossed_at
