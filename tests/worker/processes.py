"""Real worker processes for the integration tests: topics of their own, the Faust worker started
as a subprocess exactly as an operator would, its /metrics scraped, and Kafka read back.

Nothing here fakes a service: the worker talks to the real broker, Redis and database.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from loadtest.api_server import free_loopback_port
from tests.support.own_servers import REPO_ROOT

BIN = pathlib.Path(sys.executable).parent
# The two ways an operator starts the worker; both must run the same app.
ENTRY_POINTS = {
    "faust": [str(BIN / "faust"), "-A", "worker.app", "worker", "-l", "info"],
    "spikewatch": [str(BIN / "spikewatch"), "worker", "--loglevel", "info"],
}


OUTCOMES = (
    "forwarded",
    "suppressed",
    "rate_limited_issue",
    "rate_limited_project",
    "dead_lettered",
)


def outcome_counts(samples: dict[str, float]) -> dict[str, float]:
    """Events by outcome, from a worker's /metrics samples."""
    return {
        outcome: samples[f'spikewatch_events_total{{outcome="{outcome}"}}'] for outcome in OUTCOMES
    }


@dataclass(frozen=True)
class Topics:
    exception_events: str
    accepted: str
    dead_letter: str
    spikes: str

    @classmethod
    def unique(cls) -> Topics:
        run = uuid.uuid4().hex[:10]
        return cls(f"sw-in-{run}", f"sw-accepted-{run}", f"sw-dlq-{run}", f"sw-spikes-{run}")

    def all(self) -> list[str]:
        return [self.exception_events, self.accepted, self.dead_letter, self.spikes]


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


async def create_topics(bootstrap: str, topics: Topics, partitions: int) -> None:
    """Create the topics and wait until every partition has a leader (creation is asynchronous)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, num_partitions=partitions, replication_factor=1)
                for name in topics.all()
            ]
        )
        deadline = time.monotonic() + 30
        while True:
            described = await admin.describe_topics(topics.all())
            led = [
                p for topic in described for p in topic["partitions"] if p.get("leader", -1) >= 0
            ]
            if len(led) == partitions * len(topics.all()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"topics never got leaders: {described}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics.all())
    finally:
        await admin.close()


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The offsets the consumer group committed, by (topic, partition)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


async def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[int, bytes | None, bytes]]
) -> list[KafkaRecord]:
    """Send (partition, key, value) messages and return where each landed, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2_000_000)
    await producer.start()
    try:
        sent = []
        for partition, key, value in messages:
            metadata = await producer.send_and_wait(topic, value, key=key, partition=partition)
            sent.append(KafkaRecord(topic, metadata.partition, metadata.offset, key, value))
        return sent
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expected: int,
    timeout_seconds: float,
    settle_seconds: float = 2.0,
) -> list[KafkaRecord]:
    """Every record of ``topic`` once ``expected`` arrived, plus any that arrive in the next
    ``settle_seconds`` (so that an extra, unexpected record is seen rather than missed)."""
    # Without a group the consumer reads every partition of the topic it subscribes to.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        records: list[KafkaRecord] = []
        deadline = time.monotonic() + timeout_seconds
        settled_at: float | None = None
        while time.monotonic() < (settled_at or deadline):
            batches = await consumer.getmany(timeout_ms=250)
            for tp, messages in batches.items():
                records.extend(
                    KafkaRecord(tp.topic, tp.partition, m.offset, m.key, m.value) for m in messages
                )
            if settled_at is None and len(records) >= expected:
                settled_at = time.monotonic() + settle_seconds
        return records
    finally:
        await consumer.stop()


class WorkerProcess:
    """The worker in a subprocess, started by one of ENTRY_POINTS and configured by environment."""

    def __init__(
        self,
        *,
        database_url: str,
        kafka_bootstrap: str,
        redis_url: str,
        topics: Topics,
        consumer_group: str,
        workdir: pathlib.Path,
        entry_point: str = "faust",
        batch_max_events: int = 100,
    ) -> None:
        self.web_port = free_loopback_port()
        # A directory of its own: Faust keeps a data directory where it runs.
        home = workdir / f"worker-{self.web_port}"
        home.mkdir()
        self.log_path = home / "worker.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REDIS_URL": redis_url,
            "TOPIC_EXCEPTION_EVENTS": topics.exception_events,
            "TOPIC_EXCEPTION_EVENTS_ACCEPTED": topics.accepted,
            "TOPIC_EXCEPTION_EVENTS_DLQ": topics.dead_letter,
            "TOPIC_SPIKE_EVENTS": topics.spikes,
            "CONSUMER_GROUP": consumer_group,
            "WORKER_WEB_PORT": str(self.web_port),
            "BATCH_MAX_EVENTS": str(batch_max_events),
        }
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            ENTRY_POINTS[entry_point],
            cwd=home,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def metrics(self) -> dict[str, float]:
        """Every sample of the worker's /metrics, by name and labels (e.g.
        ``spikewatch_events_total{outcome="forwarded"}``)."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5)
        response.raise_for_status()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    async def assigned_partitions(self) -> set[int]:
        """Partitions of the input topic this worker reports a consumer lag for."""
        samples = await self.metrics()
        prefix = "spikewatch_consumer_lag_messages{"
        return {
            int(name.split('partition="')[1].split('"')[0])
            for name in samples
            if name.startswith(prefix)
        }

    async def wait_until_serving(self, timeout_seconds: float = 30) -> None:
        deadline = time.monotonic() + timeout_seconds
        while True:
            if self._process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_tail()}")
            try:
                await self.metrics()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no /metrics:\n{self.log_tail()}") from None
                await asyncio.sleep(0.3)

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The process's exit status once it ended, None while it runs."""
        return self._process.poll()

    def kill(self) -> None:
        """Die at once, as in a crash: no shutdown, no final commit."""
        self._process.kill()
        self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._log.close()


async def wait_for(
    description: str,
    check: Callable[[], Awaitable[bool]],
    *,
    timeout_seconds: float,
    workers: Sequence[WorkerProcess],
) -> None:
    """Poll the async ``check`` until it returns true, or fail with the workers' logs."""
    deadline = time.monotonic() + timeout_seconds
    while not await check():
        if time.monotonic() > deadline:
            logs = "\n\n".join(worker.log_tail() for worker in workers)
            raise AssertionError(f"timed out waiting for {description}:\n{logs}")
        await asyncio.sleep(0.5)
