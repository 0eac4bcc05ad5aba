"""The spike rule: does an issue's current bucket stand out against what its history leads us to
expect? Two detectors, chosen per project: ``mean`` (the seed's rule, the default) and
``adaptive`` (robust, aware of daily cycles and of small counts; DETECTION.md measures both).

Pure arithmetic on counts already read from Redis, shared by the worker and `spikewatch detect`.
It never reads or writes Redis, never snoozes and never publishes (``spike_events`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas.tables import (
    DEFAULT_SNOOZE_DURATION_MINUTES,
    DEFAULT_SPIKE_DETECTOR,
    DEFAULT_SPIKE_MULTIPLIER,
    DEFAULT_SPIKE_THRESHOLD,
)
from worker.counting import ProjectCounts

MEAN = "mean"
ADAPTIVE = "adaptive"

SECONDS_PER_DAY = 86_400
# The adaptive detector's recent level comes from the last hour, like the mean rule's baseline.
RECENT_BUCKETS = 11
# What the same time of day looked like yesterday: the median of the 5 buckets around it.
SEASONAL_HALF_WINDOW_BUCKETS = 2
# Its one sensitivity parameter: how many Poisson standard deviations (sqrt(expected + 1), so that
# an issue expected to be silent still needs a few events) the current bucket must clear above
# the expected count. Chosen on the labelled suite (DETECTION.md); higher is less sensitive.
DEFAULT_TAIL_SIGMAS = 5.0


@dataclass(frozen=True, slots=True)
class SpikeConfig:
    """A project's spike_detection_config."""

    multiplier: int = DEFAULT_SPIKE_MULTIPLIER
    threshold: int = DEFAULT_SPIKE_THRESHOLD
    snooze_duration_minutes: int = DEFAULT_SNOOZE_DURATION_MINUTES
    detector: str = DEFAULT_SPIKE_DETECTOR
    tail_sigmas: float = DEFAULT_TAIL_SIGMAS

    @property
    def snooze_seconds(self) -> int:
        return self.snooze_duration_minutes * 60


@dataclass(frozen=True, slots=True)
class SpikeCandidate:
    """An issue whose current bucket broke the rule; it becomes a spike event unless snoozed."""

    issue_id: str
    current: int
    baseline: float
    bucket_start: int


def adaptive_history_buckets(bucket_seconds: int) -> int:
    """How many historical buckets the adaptive detector reads: a day and an hour, so that its
    oldest buckets are the hour before this time yesterday, followed by this time yesterday."""
    return SECONDS_PER_DAY // bucket_seconds + RECENT_BUCKETS


def spike_mask(current: np.ndarray, baselines: np.ndarray, config: SpikeConfig) -> np.ndarray:
    """``is_spike`` over arrays of current counts and their baselines."""
    current = np.asarray(current, dtype=np.float64)
    baselines = np.asarray(baselines, dtype=np.float64)
    mask = (current >= config.threshold) & (current > baselines * config.multiplier)
    if config.detector == ADAPTIVE:
        # A ratio alone calls 0 -> 3 a spike; the count must also be improbable under the level.
        mask &= current > baselines + config.tail_sigmas * np.sqrt(baselines + 1.0)
    return mask


def is_spike(current: int, baseline: float, config: SpikeConfig) -> bool:
    return bool(spike_mask(np.array([current]), np.array([baseline]), config)[0])


def project_baseline(history_totals: Sequence[int], history_issue_counts: Sequence[int]) -> float:
    """The project's mean per-issue count: over its non-empty historical buckets, the mean of
    (events in the bucket / distinct issues in it). 0.0 for a project without history."""
    totals = np.asarray(history_totals, dtype=np.float64)
    issues = np.asarray(history_issue_counts, dtype=np.float64)
    non_empty = issues > 0
    if not non_empty.any():
        return 0.0
    return float((totals[non_empty] / issues[non_empty]).mean())


def issue_baselines(history: np.ndarray, fallback: float) -> np.ndarray:
    """The mean rule's baselines. Per row of ``history`` (issues x buckets): the mean of its
    non-empty buckets, or ``fallback`` for an issue with no history at all."""
    counts = np.asarray(history, dtype=np.float64)
    non_empty = np.count_nonzero(counts, axis=1)
    sums = counts.sum(axis=1)
    return np.divide(sums, non_empty, out=np.full(len(counts), fallback), where=non_empty > 0)


def robust_level(counts: Sequence[int]) -> float:
    """The mean after the largest third of the buckets are capped at the largest of the rest:
    a spike of up to three buckets in the window barely moves it, so past spikes do not ratchet
    up what counts as normal."""
    n = len(counts)
    if n == 0:
        return 0.0
    ordered = sorted(counts)
    kept = n - n // 3
    return (sum(ordered[:kept]) + ordered[kept - 1] * (n - kept)) / n


def adaptive_baseline(history: Sequence[int], observed_buckets: int, fallback: float) -> float:
    """The count the adaptive detector expects in the current bucket.

    ``history`` holds ``adaptive_history_buckets`` buckets, oldest first, of which the newest
    ``observed_buckets`` were observed (the issue is younger than the rest). Expected is the
    robust level of the last hour, raised, once a day is observed, by the rise seen yesterday
    from the hour before this time to this time (office hours starting, say): a daily rise is not
    a spike. A fall seen yesterday never lowers it. An issue with nothing observed is judged
    against ``fallback``, the project's mean per-issue count.
    """
    if observed_buckets <= 0:
        return fallback
    expected = robust_level(history[-min(observed_buckets, RECENT_BUCKETS) :])
    if observed_buckets >= len(history):
        hour_before = robust_level(history[:RECENT_BUCKETS])
        around = history[
            RECENT_BUCKETS - SEASONAL_HALF_WINDOW_BUCKETS : RECENT_BUCKETS
            + SEASONAL_HALF_WINDOW_BUCKETS
            + 1
        ]
        # One event added to both sides: a rise from nothing to a few is no daily pattern.
        rise = (sorted(around)[SEASONAL_HALF_WINDOW_BUCKETS] + 1.0) / (hour_before + 1.0)
        expected *= max(rise, 1.0)
    return expected


def find_spikes(
    current: np.ndarray,
    history: np.ndarray,
    project_baseline: float,
    config: SpikeConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The mean rule for every issue at once: (mask of spiking issues, their baselines)."""
    baselines = issue_baselines(history, project_baseline)
    return spike_mask(current, baselines, config), baselines


def find_spike_candidates(counts: ProjectCounts, config: SpikeConfig) -> list[SpikeCandidate]:
    """The issues of one project's batch that spike in the current bucket."""
    if not counts.issues:
        return []
    rows = list(counts.issues.values())
    current = np.array([row.current for row in rows], dtype=np.int64)
    fallback = project_baseline(counts.history_totals, counts.history_issue_counts)
    if config.detector == ADAPTIVE:
        baselines = np.array(
            [adaptive_baseline(row.history, row.observed_buckets, fallback) for row in rows]
        )
        mask = spike_mask(current, baselines, config)
    else:
        history = np.array([row.history for row in rows], dtype=np.int64)
        mask, baselines = find_spikes(current, history, fallback, config)
    return [
        SpikeCandidate(row.issue_id, row.current, float(baselines[i]), counts.bucket_start)
        for i, row in enumerate(rows)
        if mask[i]
    ]
