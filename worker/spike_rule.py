"""The spike rule: does an issue's current bucket stand out against its baseline?

Pure arithmetic on counts already read from Redis, vectorised with numpy over a batch's issues.
It never reads or writes Redis, never snoozes and never publishes (``spike_events`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas.tables import (
    DEFAULT_SNOOZE_DURATION_MINUTES,
    DEFAULT_SPIKE_MULTIPLIER,
    DEFAULT_SPIKE_THRESHOLD,
)
from worker.counting import ProjectCounts


@dataclass(frozen=True, slots=True)
class SpikeConfig:
    """A project's spike_detection_config."""

    multiplier: int = DEFAULT_SPIKE_MULTIPLIER
    threshold: int = DEFAULT_SPIKE_THRESHOLD
    snooze_duration_minutes: int = DEFAULT_SNOOZE_DURATION_MINUTES

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


def is_spike(current: int, baseline: float, config: SpikeConfig) -> bool:
    return current >= config.threshold and current > baseline * config.multiplier


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
    """Per row of ``history`` (issues x buckets): the mean of its non-empty buckets, or
    ``fallback`` for an issue with no history at all."""
    counts = np.asarray(history, dtype=np.float64)
    non_empty = np.count_nonzero(counts, axis=1)
    sums = counts.sum(axis=1)
    return np.divide(sums, non_empty, out=np.full(len(counts), fallback), where=non_empty > 0)


def find_spikes(
    current: np.ndarray,
    history: np.ndarray,
    project_baseline: float,
    config: SpikeConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """``is_spike`` for every issue at once: (mask of spiking issues, their baselines)."""
    current_counts = np.asarray(current, dtype=np.float64)
    baselines = issue_baselines(history, project_baseline)
    mask = (current_counts >= config.threshold) & (current_counts > baselines * config.multiplier)
    return mask, baselines


def find_spike_candidates(counts: ProjectCounts, config: SpikeConfig) -> list[SpikeCandidate]:
    """The issues of one project's batch that spike in the current bucket."""
    if not counts.issues:
        return []
    rows = list(counts.issues.values())
    current = np.array([row.current for row in rows], dtype=np.int64)
    history = np.array([row.history for row in rows], dtype=np.int64)
    fallback = project_baseline(counts.history_totals, counts.history_issue_counts)
    mask, baselines = find_spikes(current, history, fallback, config)
    return [
        SpikeCandidate(row.issue_id, row.current, float(baselines[i]), counts.bucket_start)
        for i, row in enumerate(rows)
        if mask[i]
    ]
