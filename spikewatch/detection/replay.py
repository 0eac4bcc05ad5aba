"""A trace replayed through the worker's own spike decision: the spikes the worker would emit for
an issue whose events are these counts, each bucket's events arriving in one batch at its start.

What the worker reads from Redis is rebuilt from the trace (the same history, the same project
fallback for a one-issue project) and judged by ``worker.spike_rule.find_spike_candidates``, the
function the worker calls. Only the snooze lock, a Redis key in the worker, is kept here as a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikewatch.detection.traces import Trace, iso
from worker.counting import IssueCounts, ProjectCounts
from worker.spike_rule import ADAPTIVE, SpikeConfig, adaptive_history_buckets, find_spike_candidates

# The worker's default HISTORY_BUCKETS (schemas/settings.py): the mean rule's window, and the
# project history every detector falls back on for a new issue.
MEAN_HISTORY_BUCKETS = 11
ISSUE = "trace"


@dataclass(frozen=True, slots=True)
class DetectedSpike:
    bucket_start: int
    current: int
    baseline: float


def spike_line(bucket_start: float, current: int, baseline: float) -> str:
    """How `spikewatch detect` prints a spike: bucket start (ISO 8601), current, baseline."""
    return f"{iso(bucket_start)},{current},{round(baseline, 4)!r}"


def replay(
    trace: Trace, config: SpikeConfig, history_buckets: int = MEAN_HISTORY_BUCKETS
) -> list[DetectedSpike]:
    adaptive = config.detector == ADAPTIVE
    window = adaptive_history_buckets(trace.bucket_seconds) if adaptive else history_buckets
    padded = [0] * window + trace.values
    spikes: list[DetectedSpike] = []
    snoozed_until = float("-inf")
    # Where the issue's Redis history begins: its first event, or the first one after its
    # history expired (a ring outlives its last write by the window it holds).
    first_seen: int | None = None
    last_seen = 0
    for index, current in enumerate(trace.values):
        # The worker decides only for the issues a batch counted.
        if current == 0:
            continue
        if first_seen is None or index - last_seen > window:
            first_seen = index
        last_seen = index
        history = padded[index : index + window]
        project_history = history[-history_buckets:]
        counts = ProjectCounts(
            bucket_start=trace.bucket_start(index),
            issues={
                ISSUE: IssueCounts(
                    ISSUE, current, history, observed_buckets=min(index - first_seen, window)
                )
            },
            history_totals=project_history,
            history_issue_counts=[1 if n else 0 for n in project_history],
        )
        for candidate in find_spike_candidates(counts, config):
            # The worker's snooze lock: SET NX EX snooze, taken when a spike goes out.
            if candidate.bucket_start >= snoozed_until:
                snoozed_until = candidate.bucket_start + config.snooze_seconds
                spikes.append(
                    DetectedSpike(candidate.bucket_start, candidate.current, candidate.baseline)
                )
    return spikes
