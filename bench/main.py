"""One benchmark run, in order: generate and load the stream, ceilings A and B, the worker over the
same topic, its steady-state cost, detection latency, then memory under growth on a fresh worker.

Each spikewatch part that fails is recorded as not measured, with the reason and the worker's log,
and the run carries on: the report always says what was and was not measured. The bench's topics
are deleted at the end; its database and worker logs live in a work directory of its own.
"""

from __future__ import annotations

import contextlib
import pathlib
import secrets
import tempfile
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from bench import kafka_io
from bench.ceilings import CEILING_A, CEILING_B, run_ceiling
from bench.cost import measure_steady_state
from bench.database import create_bench_database, sqlite_url
from bench.generator import PROJECT_COUNT, GeneratedEvent, StreamGenerator
from bench.latency import LatencyPlan, measure_detection_latency
from bench.machine import describe_machine, describe_versions
from bench.memory import distinct_fingerprint_events, measure_memory_growth
from bench.results import (
    BenchReport,
    DetectionLatency,
    MemoryGrowth,
    PartFailure,
    SteadyStateCost,
    StreamSummary,
    WorkerThroughput,
)
from bench.worker_run import BenchWorker, WorkerEnvironment, measure_worker_throughput

FULL_EVENTS = 300_000
QUICK_EVENTS = 5_000
# A worker that consumes nothing for this long is stuck, not slow.
STALL_SECONDS = 90.0
# Project ids are drawn per run: Redis is shared, and a run must not inherit another's counters.
PROJECT_ID_SPACE = 20_000_000
PROJECT_ID_STEP = 100
PROJECT_ID_FLOOR = 100_000

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class BenchOptions:
    kafka_bootstrap: str
    redis_url: str
    command: str
    events: int
    quick: bool
    steady_events: int
    latency: LatencyPlan | None
    memory_fingerprints: int | None
    seed: int = 7
    workdir: pathlib.Path | None = None

    @classmethod
    def sized(
        cls,
        *,
        quick: bool,
        kafka_bootstrap: str,
        redis_url: str,
        command: str,
        events: int | None = None,
        skip_latency: bool = False,
        skip_memory: bool = False,
        workdir: pathlib.Path | None = None,
    ) -> BenchOptions:
        """The full run (issue 7's sizes) or the quick one CI uses to prove the bench works."""
        label = uuid.uuid4().hex[:6]
        latency = LatencyPlan(
            bursts=20,
            threshold=20 if quick else 50,
            background_events_per_second=1_000 if quick else 5_000,
            background_seconds=8 if quick else 30,
            spike_wait_seconds=10 if quick else 30,
            label=label,
        )
        return cls(
            kafka_bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            command=command,
            events=events or (QUICK_EVENTS if quick else FULL_EVENTS),
            quick=quick,
            steady_events=2_000 if quick else 50_000,
            latency=None if skip_latency else latency,
            memory_fingerprints=None if skip_memory else (20_000 if quick else 1_000_000),
            workdir=workdir,
        )


async def run_benchmark(options: BenchOptions) -> BenchReport:
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    bootstrap = options.kafka_bootstrap
    base = PROJECT_ID_FLOOR + secrets.randbelow(PROJECT_ID_SPACE) * PROJECT_ID_STEP
    stream_projects = [base + n for n in range(1, PROJECT_COUNT + 1)]
    # Bursts go to a project of their own, without history, so only its low threshold matters.
    burst_project = base + PROJECT_COUNT + 1
    latency_plan = options.latency
    stream = StreamGenerator(options.seed, stream_projects)
    topics = kafka_io.RunTopics.unique("main")
    relay_topic = f"bench-relay-{uuid.uuid4().hex[:8]}"
    with _work_directory(options.workdir) as workdir:
        database_url = sqlite_url(workdir / "bench.db")
        configuration = await create_bench_database(
            database_url,
            stream_projects,
            javascript_projects=stream.javascript_projects,
            burst_project=burst_project if latency_plan else None,
            burst_threshold=latency_plan.threshold if latency_plan else None,
        )
        await kafka_io.create_run_topics(bootstrap, topics)
        await kafka_io.create_topics(bootstrap, [relay_topic])
        try:
            load_started = time.perf_counter()
            seen = _SeenEvents()
            per_project = await kafka_io.load(
                bootstrap, topics.exception_events, seen.track(stream.events(options.events))
            )
            per_partition = await kafka_io.end_offsets(bootstrap, topics.exception_events)
            loaded = sum(per_partition.values())
            stream_summary = StreamSummary(
                seed=options.seed,
                projects=len(per_project),
                catalog_issues=len(stream.catalog),
                issues_used=len(seen.issues),
                events_loaded=loaded,
                events_per_partition=per_partition,
                events_of_busiest_project=max(per_project.values()),
                mean_event_bytes=seen.total_bytes / max(seen.count, 1),
                suppression_rules=configuration.suppression_rules,
                rate_limited_projects=configuration.rate_limited_projects,
                load_seconds=time.perf_counter() - load_started,
            )
            ceiling_timeout = max(120.0, loaded / 500)
            ceiling_a = await _attempt(
                run_ceiling(
                    CEILING_A,
                    bootstrap=bootstrap,
                    topic=topics.exception_events,
                    expected=loaded,
                    timeout_seconds=ceiling_timeout,
                )
            )
            ceiling_b = await _attempt(
                run_ceiling(
                    CEILING_B,
                    bootstrap=bootstrap,
                    topic=topics.exception_events,
                    expected=loaded,
                    relay_topic=relay_topic,
                    timeout_seconds=ceiling_timeout,
                )
            )
            relay_topic_events = sum((await kafka_io.end_offsets(bootstrap, relay_topic)).values())
            worker = BenchWorker(
                WorkerEnvironment(database_url, options.redis_url, bootstrap, topics), workdir
            )
            try:
                spikewatch = await _attempt(
                    measure_worker_throughput(worker, loaded, stall_seconds=STALL_SECONDS), worker
                )
                steady_state, latency = await _live_parts(
                    options,
                    spikewatch,
                    worker,
                    stream,
                    seen.issues,
                    database_url,
                    topics,
                    burst_project,
                )
            finally:
                worker.stop()
            spikes_published = sum((await kafka_io.end_offsets(bootstrap, topics.spikes)).values())
        finally:
            await kafka_io.delete_topics(bootstrap, [*topics.all(), relay_topic])
        memory = None
        if options.memory_fingerprints:
            memory = await _memory_part(options, stream_projects, workdir)
    return BenchReport(
        command=options.command,
        quick=options.quick,
        started_at=started_at,
        machine=describe_machine(),
        versions=await describe_versions(options.redis_url),
        stream=stream_summary,
        ceiling_a=ceiling_a,
        ceiling_b=ceiling_b,
        relay_topic_events=relay_topic_events,
        spikewatch=spikewatch,
        spikes_published=spikes_published,
        steady_state=steady_state,
        latency=latency,
        memory=memory,
    )


async def _live_parts(
    options: BenchOptions,
    spikewatch: WorkerThroughput | PartFailure,
    worker: BenchWorker,
    stream: StreamGenerator,
    seen_issues: set[int],
    database_url: str,
    topics: kafka_io.RunTopics,
    burst_project: int,
) -> tuple[SteadyStateCost | PartFailure, DetectionLatency | PartFailure | None]:
    """The parts that need the worker caught up on the loaded stream and still running."""
    latency_plan = options.latency
    if isinstance(spikewatch, PartFailure):
        not_run = PartFailure("not run: the worker did not get through the loaded stream")
        return not_run, (not_run if latency_plan else None)
    bootstrap = options.kafka_bootstrap

    async def steady_pass() -> int:
        # Issues the worker has already seen only: no new issue or frame is due.
        events = stream.events(options.steady_events, issue_pool=sorted(seen_issues))
        return sum((await kafka_io.load(bootstrap, topics.exception_events, events)).values())

    steady_state = await _attempt(
        measure_steady_state(
            worker,
            redis_url=options.redis_url,
            database_url=database_url,
            produce=steady_pass,
            stall_seconds=STALL_SECONDS,
        ),
        worker,
    )
    if latency_plan is None:
        return steady_state, None
    background_events = int(
        latency_plan.background_events_per_second * latency_plan.background_seconds
    )
    latency = await _attempt(
        measure_detection_latency(
            latency_plan,
            burst_project=burst_project,
            bootstrap=bootstrap,
            input_topic=topics.exception_events,
            spike_topic=topics.spikes,
            database_url=database_url,
            background=stream.events(background_events + 1),
        ),
        worker,
    )
    return steady_state, latency


async def _memory_part(
    options: BenchOptions, stream_projects: list[int], workdir: pathlib.Path
) -> MemoryGrowth | PartFailure:
    """A fresh worker, database and topic, so the curve starts from an empty cache."""
    fingerprints = options.memory_fingerprints or 0
    bootstrap = options.kafka_bootstrap
    topics = kafka_io.RunTopics.unique("growth")
    database_url = sqlite_url(workdir / "growth.db")
    await create_bench_database(
        database_url, stream_projects, javascript_projects=stream_projects[1::2]
    )
    await kafka_io.create_run_topics(bootstrap, topics)
    try:
        await kafka_io.load(
            bootstrap,
            topics.exception_events,
            distinct_fingerprint_events(fingerprints, stream_projects, uuid.uuid4().hex[:6]),
        )
        worker = BenchWorker(
            WorkerEnvironment(database_url, options.redis_url, bootstrap, topics), workdir
        )
        try:
            return await _attempt(
                measure_memory_growth(worker, fingerprints, stall_seconds=STALL_SECONDS), worker
            )
        finally:
            worker.stop()
    finally:
        await kafka_io.delete_topics(bootstrap, topics.all())


async def _attempt(part: Awaitable[_T], worker: BenchWorker | None = None) -> _T | PartFailure:
    """Run one measured part; a failure becomes the part's result instead of ending the run."""
    try:
        return await part
    except Exception as exc:
        return PartFailure(
            reason=f"{type(exc).__name__}: {exc}",
            log_tail=worker.log_tail() if worker is not None else "",
        )


class _SeenEvents:
    """Counts what the loader sends as it goes, without holding the events."""

    def __init__(self) -> None:
        self.issues: set[int] = set()
        self.count = 0
        self.total_bytes = 0

    def track(self, events: Iterator[GeneratedEvent]) -> Iterator[GeneratedEvent]:
        for event in events:
            self.issues.add(event.issue_index)
            self.count += 1
            self.total_bytes += len(event.value)
            yield event


@contextlib.contextmanager
def _work_directory(path: pathlib.Path | None) -> Iterator[pathlib.Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="spikewatch-bench-") as temporary:
        yield pathlib.Path(temporary)
