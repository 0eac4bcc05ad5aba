"""The real spikewatch worker as the bench runs it: the Faust app in a subprocess configured through
its environment (fresh consumer group, the bench's topics and database), observed only through its
/metrics page and /proc. Also the throughput measurement from the first offset to the last.

It never imports the worker: what is measured is exactly what an operator starts.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import proc
from bench.kafka_io import RunTopics
from bench.results import Throughput, WorkerThroughput
from bench.servers import ServerCpu

CONSUMED_METRIC = "spikewatch_events_consumed_total"
OUTCOME_METRIC = "spikewatch_events_total"
BATCHES_METRIC = "spikewatch_batch_size_events_count"
DB_STATEMENTS_METRIC = "spikewatch_bench_db_statements_total"
REDIS_ROUND_TRIPS_METRIC = "spikewatch_bench_redis_round_trips_total"
SPIKES_METRIC = "spikewatch_spikes_emitted_total"
POLL_SECONDS = 0.2
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class WorkerEnvironment:
    database_url: str
    redis_url: str
    kafka_bootstrap: str
    topics: RunTopics
    batch_max_events: int = 1_000


class BenchWorker:
    """``faust -A worker.app worker`` (through ``bench.worker_probe``, which adds a count of SQL
    statements) with a consumer group of its own unless ``group`` names one, reading its topic
    from the first offset (a new group starts at the oldest event)."""

    def __init__(
        self, environment: WorkerEnvironment, workdir: pathlib.Path, *, group: str | None = None
    ) -> None:
        self.environment = environment
        self.web_port = _free_port()
        # Faust keeps a data directory where it runs: one directory per worker.
        self.home = workdir / f"worker-{self.web_port}"
        self.home.mkdir(parents=True)
        self.log_path = self.home / "worker.log"
        self._log = self.log_path.open("wb")
        env = {
            **os.environ,
            "DATABASE_URL": environment.database_url,
            "REDIS_URL": environment.redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": environment.kafka_bootstrap,
            "TOPIC_EXCEPTION_EVENTS": environment.topics.exception_events,
            "TOPIC_EXCEPTION_EVENTS_ACCEPTED": environment.topics.accepted,
            "TOPIC_EXCEPTION_EVENTS_DLQ": environment.topics.dead_letter,
            "TOPIC_SPIKE_EVENTS": environment.topics.spikes,
            "CONSUMER_GROUP": group or f"bench-worker-{uuid.uuid4().hex[:8]}",
            "WORKER_WEB_PORT": str(self.web_port),
            "BATCH_MAX_EVENTS": str(environment.batch_max_events),
        }
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.worker_probe",
                "-A",
                "worker.app",
                "worker",
                "-l",
                "warn",
            ],
            cwd=self.home,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self._process.poll() is not None:
            raise WorkerFailed(f"the worker exited with status {self._process.returncode}")

    async def metrics(self) -> dict[str, float]:
        """Every sample of /metrics by name and sorted labels, e.g.
        ``spikewatch_events_total{outcome="forwarded"}``."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5)
        response.raise_for_status()
        samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    async def wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            self.check_alive()
            try:
                await self.metrics()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise WorkerFailed("the worker served no /metrics in time") from None
                await asyncio.sleep(0.3)

    async def wait_for_consumed(
        self,
        target: int,
        *,
        stall_seconds: float,
        on_poll: Callable[[int], None] | None = None,
    ) -> dict[str, float]:
        """Poll /metrics until the worker consumed ``target`` events; fails when it makes no
        progress for ``stall_seconds``. Returns the last metrics read."""
        last_progress_at, last_consumed = time.monotonic(), -1
        while True:
            self.check_alive()
            samples = await self.metrics()
            consumed = int(samples.get(CONSUMED_METRIC, 0))
            if on_poll is not None:
                on_poll(consumed)
            if consumed >= target:
                return samples
            if consumed != last_consumed:
                last_progress_at, last_consumed = time.monotonic(), consumed
            elif time.monotonic() - last_progress_at > stall_seconds:
                raise WorkerFailed(
                    f"the worker stalled at {consumed} of {target} events for {stall_seconds:.0f} s"
                )
            await asyncio.sleep(POLL_SECONDS)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._log.close()


class WorkerFailed(RuntimeError):
    """The worker exited, stalled or never served its metrics."""


async def measure_worker_throughput(
    worker: BenchWorker, expected: int, *, stall_seconds: float
) -> WorkerThroughput:
    """From the first poll that shows progress to the poll that shows every event consumed; the
    events before that first poll are left out, like the ceilings' first batch."""
    await worker.wait_until_serving()
    servers = _server_cpu(worker)
    started: list[tuple[float, float, int, tuple[float | None, float | None]]] = []

    def note_start(consumed: int) -> None:
        if consumed and not started:
            now, cpu = time.perf_counter(), proc.cpu_seconds(worker.pid)
            started.append((now, cpu, consumed, servers.read()))

    samples = await worker.wait_for_consumed(
        expected, stall_seconds=stall_seconds, on_poll=note_start
    )
    finished_at, finished_cpu = time.perf_counter(), proc.cpu_seconds(worker.pid)
    finished_servers = servers.read()
    started_at, started_cpu, consumed_at_start, started_servers = started[0]
    consumed = int(samples[CONSUMED_METRIC])
    redis_cpu, kafka_cpu = _spent(started_servers, finished_servers)
    throughput = Throughput(
        name="spikewatch",
        events_total=consumed,
        events_measured=consumed - consumed_at_start,
        seconds=finished_at - started_at,
        cpu_seconds=finished_cpu - started_cpu,
        peak_rss_bytes=proc.peak_resident_bytes(worker.pid),
        redis_cpu_seconds=redis_cpu,
        kafka_cpu_seconds=kafka_cpu,
    )
    return WorkerThroughput(
        throughput=throughput,
        outcomes=outcome_counts(samples),
        db_statements=sum(statement_counts(samples).values()),
    )


async def measure_group_throughput(
    workers: list[BenchWorker], expected: int, *, stall_seconds: float
) -> Throughput:
    """Several workers of one consumer group over the same topic: from the first poll that shows
    progress in any of them to the poll where together they consumed ``expected`` events; CPU and
    peak RSS are their sums."""
    for worker in workers:
        await worker.wait_until_serving()
    servers = _server_cpu(workers[0])
    started: tuple[float, float, int, tuple[float | None, float | None]] | None = None
    last_progress_at, last_consumed = time.monotonic(), -1
    while True:
        consumed = 0
        for worker in workers:
            worker.check_alive()
            consumed += int((await worker.metrics()).get(CONSUMED_METRIC, 0))
        cpu = sum(proc.cpu_seconds(worker.pid) for worker in workers)
        if consumed and started is None:
            started = (time.perf_counter(), cpu, consumed, servers.read())
        if consumed >= expected and started is not None:
            started_at, started_cpu, consumed_at_start, started_servers = started
            redis_cpu, kafka_cpu = _spent(started_servers, servers.read())
            return Throughput(
                name=f"spikewatch, {len(workers)} processes",
                events_total=consumed,
                events_measured=consumed - consumed_at_start,
                seconds=time.perf_counter() - started_at,
                cpu_seconds=cpu - started_cpu,
                peak_rss_bytes=sum(proc.peak_resident_bytes(worker.pid) for worker in workers),
                redis_cpu_seconds=redis_cpu,
                kafka_cpu_seconds=kafka_cpu,
            )
        if consumed != last_consumed:
            last_progress_at, last_consumed = time.monotonic(), consumed
        elif time.monotonic() - last_progress_at > stall_seconds:
            raise WorkerFailed(f"the workers stalled at {consumed} of {expected} events")
        await asyncio.sleep(POLL_SECONDS)


def _server_cpu(worker: BenchWorker) -> ServerCpu:
    return ServerCpu(worker.environment.redis_url, worker.environment.kafka_bootstrap)


def _spent(
    started: tuple[float | None, float | None], finished: tuple[float | None, float | None]
) -> tuple[float | None, float | None]:
    """Per server, the CPU seconds between two readings (None unless both were read)."""
    redis_cpu, kafka_cpu = (
        None if before is None or after is None else after - before
        for before, after in zip(started, finished, strict=True)
    )
    return redis_cpu, kafka_cpu


def outcome_counts(samples: dict[str, float]) -> dict[str, int]:
    return _by_label(samples, OUTCOME_METRIC, "outcome")


def statement_counts(samples: dict[str, float]) -> dict[str, int]:
    """SQL statements of the worker process so far by kind, e.g. ``"insert <table>"``."""
    return _by_label(samples, DB_STATEMENTS_METRIC, "statement")


def _by_label(samples: dict[str, float], metric: str, label: str) -> dict[str, int]:
    prefix = f'{metric}{{{label}="'
    return {
        name[len(prefix) : -2]: int(value)
        for name, value in samples.items()
        if name.startswith(prefix)
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
