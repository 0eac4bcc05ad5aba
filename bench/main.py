"""One benchmark run, in order: generate and load the stream, ceilings A and B and the Faust floor,
the worker over the same topic, its steady-state cost, detection latency, then memory under growth
on a fresh worker.

Each spikewatch part that fails is recorded as not measured, with the reason and the worker's log,
and the run carries on: the report always says what was and was not measured. The bench's topics
are deleted at the end; its database and worker logs live in a work directory of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import secrets
import tempfile
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from redis.asyncio import Redis

from bench import kafka_io
from bench.ceilings import CEILING_A, CEILING_B, run_ceiling, run_faust_relay
from bench.cost import measure_steady_state
from bench.database import BenchConfiguration, create_bench_database, sqlite_url
from bench.generator import PROJECT_COUNT, GeneratedEvent, StreamGenerator
from bench.latency import LatencyPlan, measure_detection_latency
from bench.machine import describe_machine, describe_versions
from bench.memory import distinct_fingerprint_events, measure_memory_growth
from bench.profile import ProfileSummary, WorkerProfiler
from bench.redis_cleanup import forget_projects
from bench.results import (
    BenchReport,
    DetectionLatency,
    MemoryGrowth,
    PartFailure,
    SteadyStateCost,
    StreamSummary,
    Throughput,
    WorkerThroughput,
)
from bench.worker_run import (
    BenchWorker,
    WorkerEnvironment,
    measure_group_throughput,
    measure_worker_throughput,
)
from schemas.tables import DEFAULT_SPIKE_DETECTOR

FULL_EVENTS = 300_000
QUICK_EVENTS = 5_000
# A ceiling slower than this is broken, not slow; it gets at least the minimum to start.
CEILING_SLOWEST_EVENTS_PER_SECOND = 500
CEILING_MIN_TIMEOUT_SECONDS = 120.0
# A worker that consumes nothing for this long is stuck, not slow.
STALL_SECONDS = 90.0
# Worker processes sharing one consumer group in the scaling part, beyond the single worker of
# the throughput part (this machine has 2 cores).
SHARED_GROUP_SIZES = (2, 3)
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
    # Sample the worker with py-spy during the throughput part (bench/profile.py).
    profile: bool = False
    # The spike detector of every project of the run (spike_detection_config.detector).
    detector: str = DEFAULT_SPIKE_DETECTOR

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
        profile: bool = False,
        detector: str = DEFAULT_SPIKE_DETECTOR,
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
            profile=profile,
            detector=detector,
        )


async def run_benchmark(options: BenchOptions) -> BenchReport:
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    with _work_directory(options.workdir) as workdir:
        run = _Run.plan(options, workdir)
        configuration = await create_bench_database(
            run.database_url,
            run.stream.project_ids,
            javascript_projects=run.stream.javascript_projects,
            burst_projects=run.burst_projects if options.latency else (),
            burst_threshold=options.latency.threshold if options.latency else None,
            detector=options.detector,
        )
        try:
            await kafka_io.create_run_topics(options.kafka_bootstrap, run.topics)
            relay_topics = [run.relay_topic, run.faust_relay_topic]
            await kafka_io.create_topics(options.kafka_bootstrap, relay_topics)
            try:
                stream = await _load_stream(run, configuration)
                ceiling_a, ceiling_b = await _ceilings(run, stream.events_loaded)
                relay_topic_events = await _count_events(run, run.relay_topic)
                faust_relay = await _attempt(_faust_relay(run, stream.events_loaded))
                faust_relay_topic_events = await _count_events(run, run.faust_relay_topic)
                worker_parts = await _worker_parts(run, stream.events_loaded)
                spikes_published = await _count_events(run, run.topics.spikes)
                shared_groups = {
                    size: await _attempt(_shared_group_part(run, stream.events_loaded, size))
                    for size in SHARED_GROUP_SIZES
                }
            finally:
                await kafka_io.delete_topics(
                    options.kafka_bootstrap, [*run.topics.all(), *relay_topics]
                )
            memory = await _memory_part(run) if options.memory_fingerprints else None
        finally:
            await _forget_projects(
                options.redis_url, [*run.stream.project_ids, *run.burst_projects]
            )
    return BenchReport(
        command=options.command,
        quick=options.quick,
        started_at=started_at,
        machine=describe_machine(),
        versions=await describe_versions(options.redis_url),
        stream=stream,
        ceiling_a=ceiling_a,
        ceiling_b=ceiling_b,
        relay_topic_events=relay_topic_events,
        faust_relay=faust_relay,
        faust_relay_topic_events=faust_relay_topic_events,
        spikewatch=worker_parts.spikewatch,
        spikes_published=spikes_published,
        steady_state=worker_parts.steady_state,
        latency=worker_parts.latency,
        latency_within_capacity=worker_parts.latency_within_capacity,
        memory=memory,
        profile=worker_parts.profile,
        shared_groups=shared_groups,
    )


@dataclass(slots=True)
class _Run:
    """What one run works on: its projects, stream, topics and database."""

    options: BenchOptions
    workdir: pathlib.Path
    stream: StreamGenerator
    burst_projects: list[int]
    topics: kafka_io.RunTopics
    relay_topic: str
    faust_relay_topic: str
    database_url: str
    # Catalog indices of the issues loaded, so the steady pass replays known issues only.
    seen_issues: set[int] = field(default_factory=set)

    @classmethod
    def plan(cls, options: BenchOptions, workdir: pathlib.Path) -> _Run:
        base = PROJECT_ID_FLOOR + secrets.randbelow(PROJECT_ID_SPACE) * PROJECT_ID_STEP
        return cls(
            options=options,
            workdir=workdir,
            stream=StreamGenerator(options.seed, [base + n for n in range(1, PROJECT_COUNT + 1)]),
            # Each burst goes to a project of its own that never had an event: the baseline is
            # then 0 and only the threshold matters. (Bursts sharing a project would, once a
            # 5-minute bucket boundary passed, meet the earlier bursts' counts as the project's
            # history, and a baseline of the threshold itself.)
            burst_projects=[
                base + PROJECT_COUNT + 1 + burst for burst in range(_burst_count(options))
            ],
            topics=kafka_io.RunTopics.unique("main"),
            relay_topic=f"bench-relay-{uuid.uuid4().hex[:8]}",
            faust_relay_topic=f"bench-faust-relay-{uuid.uuid4().hex[:8]}",
            database_url=sqlite_url(workdir / "bench.db"),
        )


def _burst_count(options: BenchOptions) -> int:
    # Two latency parts (within the worker's capacity, then at the target's rate), each with
    # projects of its own.
    return 2 * options.latency.bursts if options.latency else 0


async def _load_stream(run: _Run, configuration: BenchConfiguration) -> StreamSummary:
    started = time.perf_counter()
    count = total_bytes = 0

    def tracked(events: Iterator[GeneratedEvent]) -> Iterator[GeneratedEvent]:
        nonlocal count, total_bytes
        for event in events:
            run.seen_issues.add(event.issue_index)
            count += 1
            total_bytes += len(event.value)
            yield event

    bootstrap = run.options.kafka_bootstrap
    per_project = await kafka_io.load(
        bootstrap, run.topics.exception_events, tracked(run.stream.events(run.options.events))
    )
    per_partition = await kafka_io.end_offsets(bootstrap, run.topics.exception_events)
    return StreamSummary(
        seed=run.options.seed,
        projects=len(per_project),
        catalog_issues=len(run.stream.catalog),
        issues_used=len(run.seen_issues),
        events_loaded=sum(per_partition.values()),
        events_per_partition=per_partition,
        events_of_busiest_project=max(per_project.values()),
        mean_event_bytes=total_bytes / max(count, 1),
        suppression_rules=configuration.suppression_rules,
        rate_limited_projects=configuration.rate_limited_projects,
        load_seconds=time.perf_counter() - started,
    )


async def _ceilings(
    run: _Run, loaded: int
) -> tuple[Throughput | PartFailure, Throughput | PartFailure]:
    timeout_seconds = _ceiling_timeout_seconds(loaded)
    results = []
    for kind, relay_topic in ((CEILING_A, None), (CEILING_B, run.relay_topic)):
        ceiling = run_ceiling(
            kind,
            bootstrap=run.options.kafka_bootstrap,
            topic=run.topics.exception_events,
            expected=loaded,
            relay_topic=relay_topic,
            timeout_seconds=timeout_seconds,
        )
        results.append(await _attempt(ceiling))
    ceiling_a, ceiling_b = results
    return ceiling_a, ceiling_b


async def _faust_relay(run: _Run, loaded: int) -> Throughput:
    return await run_faust_relay(
        bootstrap=run.options.kafka_bootstrap,
        topic=run.topics.exception_events,
        expected=loaded,
        relay_topic=run.faust_relay_topic,
        workdir=run.workdir,
        timeout_seconds=_ceiling_timeout_seconds(loaded),
    )


def _ceiling_timeout_seconds(loaded: int) -> float:
    return max(CEILING_MIN_TIMEOUT_SECONDS, loaded / CEILING_SLOWEST_EVENTS_PER_SECOND)


@dataclass(slots=True)
class _WorkerParts:
    spikewatch: WorkerThroughput | PartFailure
    steady_state: SteadyStateCost | PartFailure
    latency: DetectionLatency | PartFailure | None = None
    latency_within_capacity: DetectionLatency | PartFailure | None = None
    profile: ProfileSummary | PartFailure | None = None


async def _worker_parts(run: _Run, loaded: int) -> _WorkerParts:
    """Throughput over the loaded topic (sampled by py-spy if asked), then, with the same worker
    caught up and still running, the steady-state cost and the detection latency: first at a
    background rate the worker keeps up with (half its measured throughput), then at the
    target's rate, which may leave it behind."""
    options = run.options
    worker = BenchWorker(
        WorkerEnvironment(run.database_url, options.redis_url, options.kafka_bootstrap, run.topics),
        run.workdir,
    )
    try:
        spikewatch, profile = await _throughput_part(run, worker, loaded)
        if isinstance(spikewatch, PartFailure):
            not_run = PartFailure("not run: the worker did not get through the loaded stream")
            latency_not_run = not_run if options.latency else None
            return _WorkerParts(spikewatch, not_run, latency_not_run, latency_not_run, profile)
        parts = _WorkerParts(
            spikewatch, await _attempt(_steady_state(run, worker), worker), profile=profile
        )
        plan = options.latency
        if plan is not None:
            within = dataclasses.replace(
                plan,
                background_events_per_second=rate_within_capacity(spikewatch),
                label=f"{plan.label}w",
            )
            parts.latency_within_capacity = await _attempt(
                _detection_latency(run, within, run.burst_projects[plan.bursts :]), worker
            )
            parts.latency = await _attempt(
                _detection_latency(run, plan, run.burst_projects[: plan.bursts]), worker
            )
        return parts
    finally:
        worker.stop()


def rate_within_capacity(spikewatch: WorkerThroughput) -> float:
    """Half the worker's measured throughput, in hundreds of events a second (at least 100)."""
    measured = spikewatch.throughput.events_per_second or 0.0
    return float(max(100, int(measured * 0.5) // 100 * 100))


async def _throughput_part(
    run: _Run, worker: BenchWorker, loaded: int
) -> tuple[WorkerThroughput | PartFailure, ProfileSummary | PartFailure | None]:
    throughput = measure_worker_throughput(worker, loaded, stall_seconds=STALL_SECONDS)
    if not run.options.profile:
        return await _attempt(throughput, worker), None
    profiler = WorkerProfiler(worker.pid, run.workdir / "worker-profile.txt")
    started = await _attempt(_start_profiler(worker, profiler))
    spikewatch = await _attempt(throughput, worker)
    if isinstance(started, PartFailure):
        return spikewatch, started
    return spikewatch, await _attempt(profiler.stop())


async def _start_profiler(worker: BenchWorker, profiler: WorkerProfiler) -> None:
    # From the first /metrics answer: the imports and start-up before it are not the hot path.
    await worker.wait_until_serving()
    await profiler.start()


async def _steady_state(run: _Run, worker: BenchWorker) -> SteadyStateCost:
    async def replay_known_issues() -> int:
        events = run.stream.events(run.options.steady_events, issue_pool=sorted(run.seen_issues))
        per_project = await kafka_io.load(
            run.options.kafka_bootstrap, run.topics.exception_events, events
        )
        return sum(per_project.values())

    return await measure_steady_state(
        worker,
        redis_url=run.options.redis_url,
        database_url=run.database_url,
        produce=replay_known_issues,
        stall_seconds=STALL_SECONDS,
    )


async def _detection_latency(
    run: _Run, plan: LatencyPlan, burst_projects: list[int]
) -> DetectionLatency:
    background_events = int(plan.background_events_per_second * plan.background_seconds)
    return await measure_detection_latency(
        plan,
        burst_projects=burst_projects,
        bootstrap=run.options.kafka_bootstrap,
        input_topic=run.topics.exception_events,
        spike_topic=run.topics.spikes,
        database_url=run.database_url,
        background=run.stream.events(background_events + 1),
    )


async def _shared_group_part(run: _Run, loaded: int, processes: int) -> Throughput:
    """``processes`` workers in one new group over the input topic until together they consumed
    as many events as were loaded, as the first worker met them: a fresh database and the
    projects' Redis keys forgotten, so they redo its work."""
    options = run.options
    await _forget_projects(options.redis_url, [*run.stream.project_ids, *run.burst_projects])
    database_url = sqlite_url(run.workdir / f"shared-group-{processes}.db")
    await create_bench_database(
        database_url,
        run.stream.project_ids,
        javascript_projects=run.stream.javascript_projects,
        burst_projects=run.burst_projects if options.latency else (),
        burst_threshold=options.latency.threshold if options.latency else None,
        detector=options.detector,
    )
    environment = WorkerEnvironment(
        database_url, options.redis_url, options.kafka_bootstrap, run.topics
    )
    group = f"bench-shared-{uuid.uuid4().hex[:8]}"
    workers = [BenchWorker(environment, run.workdir, group=group) for _ in range(processes)]
    try:
        return await measure_group_throughput(workers, loaded, stall_seconds=STALL_SECONDS)
    finally:
        for worker in workers:
            worker.stop()


async def _memory_part(run: _Run) -> MemoryGrowth | PartFailure:
    """A fresh worker, database and topic, so the curve starts from an empty cache."""
    options = run.options
    fingerprints = options.memory_fingerprints or 0
    bootstrap = options.kafka_bootstrap
    projects = run.stream.project_ids
    topics = kafka_io.RunTopics.unique("growth")
    database_url = sqlite_url(run.workdir / "growth.db")
    await create_bench_database(
        database_url,
        projects,
        javascript_projects=run.stream.javascript_projects,
        detector=options.detector,
    )
    await kafka_io.create_run_topics(bootstrap, topics)
    try:
        await kafka_io.load(
            bootstrap,
            topics.exception_events,
            distinct_fingerprint_events(fingerprints, projects, uuid.uuid4().hex[:6]),
        )
        worker = BenchWorker(
            WorkerEnvironment(database_url, options.redis_url, bootstrap, topics), run.workdir
        )
        try:
            return await _attempt(
                measure_memory_growth(worker, fingerprints, stall_seconds=STALL_SECONDS), worker
            )
        finally:
            worker.stop()
    finally:
        await kafka_io.delete_topics(bootstrap, topics.all())


async def _forget_projects(redis_url: str, project_ids: list[int]) -> None:
    client = Redis.from_url(redis_url)
    try:
        await forget_projects(client, project_ids)
    finally:
        await client.aclose()


async def _count_events(run: _Run, topic: str) -> int:
    return sum((await kafka_io.end_offsets(run.options.kafka_bootstrap, topic)).values())


async def _attempt(part: Awaitable[_T], worker: BenchWorker | None = None) -> _T | PartFailure:
    """Run one measured part; a failure becomes the part's result instead of ending the run."""
    try:
        return await part
    except Exception as exc:
        return PartFailure(
            reason=f"{type(exc).__name__}: {exc}",
            log_tail=worker.log_tail() if worker is not None else "",
        )


@contextlib.contextmanager
def _work_directory(path: pathlib.Path | None) -> Iterator[pathlib.Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="spikewatch-bench-") as temporary:
        yield pathlib.Path(temporary)
