"""Memory under growth: a stream in which every event is a new issue (a distinct manual
fingerprint, small events) goes through one fresh worker while its resident memory is sampled,
so the report shows whether the worker's caches stay bounded.

It reads the worker's memory from /proc only; it never changes the worker's cache sizes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence

from bench import proc
from bench.generator import GeneratedEvent, small_event, utc_timestamp
from bench.results import MemoryGrowth, MemorySample
from bench.worker_run import CONSUMED_METRIC, BenchWorker

SAMPLES = 20


def distinct_fingerprint_events(
    count: int, project_ids: Sequence[int], label: str
) -> Iterator[GeneratedEvent]:
    """``count`` small events, each with a fingerprint no other event has, round-robin over the
    projects."""
    timestamp = utc_timestamp()
    for n in range(count):
        project_id = project_ids[n % len(project_ids)]
        yield GeneratedEvent(
            key=str(project_id).encode(),
            value=small_event(
                project_id, f"bench-{label}-growth-{n}", str(uuid.UUID(int=n, version=4)), timestamp
            ),
            issue_index=n,
            project_id=project_id,
        )


async def measure_memory_growth(
    worker: BenchWorker, fingerprints: int, *, stall_seconds: float
) -> MemoryGrowth:
    """Sample the worker's RSS each time another 1/SAMPLES of the stream has been consumed."""
    step = max(fingerprints // SAMPLES, 1)
    await worker.wait_until_serving()
    started = time.perf_counter()
    at_start = await worker.metrics()
    # The first sample is the worker as it starts, before its caches fill.
    samples = [
        MemorySample(
            events=int(at_start.get(CONSUMED_METRIC, 0)), rss_bytes=proc.resident_bytes(worker.pid)
        )
    ]
    marks_reached = 0

    def sample(consumed: int) -> None:
        nonlocal marks_reached
        if consumed >= min((marks_reached + 1) * step, fingerprints):
            marks_reached = consumed // step
            samples.append(MemorySample(events=consumed, rss_bytes=proc.resident_bytes(worker.pid)))

    await worker.wait_for_consumed(fingerprints, stall_seconds=stall_seconds, on_poll=sample)
    return MemoryGrowth(
        fingerprints=fingerprints,
        samples=samples,
        # The kernel records its high-water mark (VmHWM) on only some of the paths that give
        # memory back, so an earlier VmRSS sample can stand above it (seen in CI: 172.1 MB
        # sampled, VmHWM 171.8 MB); the peak is at least every sample.
        peak_rss_bytes=max(
            proc.peak_resident_bytes(worker.pid), *(sample.rss_bytes for sample in samples)
        ),
        seconds=time.perf_counter() - started,
    )
