"""Spike counting: each event that passed suppression counts in its issue's and project's bucket.

Owns the call to ``counting.lua`` (arguments in, history out) and the shapes of what it returns.
It never decides whether an issue spikes (``spike_rule``) and never talks to Redis on its own:
``redis_stage`` makes its call and the rate limiter's one call per project.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from schemas.redis_keys import project_tag

COUNTING_LUA = files("worker").joinpath("counting.lua").read_text(encoding="utf-8")

# Watermarks only need to outlive a redelivery (a crash or rebalance); a week is ample.
WATERMARK_TTL_SECONDS = 7 * 24 * 3600
# A bucket key outlives the history window by this much, so workers whose clocks disagree by
# less than a minute still read the same history.
BUCKET_TTL_SLACK_SECONDS = 60


@dataclass(frozen=True, slots=True)
class CountedEvent:
    """An event that passed suppression, as the Redis stages need it."""

    issue_id: str
    partition: int
    offset: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class IssueCounts:
    issue_id: str
    current: int
    history: list[int]  # the historical buckets, oldest first
    # Adaptive detector only: how many of the newest ``history`` buckets the issue was tracked for.
    observed_buckets: int = 0


@dataclass(frozen=True, slots=True)
class ProjectCounts:
    """One project's counts after a batch, for every issue the batch touched.

    ``history_totals[i]`` is the project's event count in historical bucket ``i`` (oldest first)
    and ``history_issue_counts[i]`` the number of distinct issues in it, so the project baseline
    is a mean per-issue count (see ``spike_rule.project_baseline``).
    """

    bucket_start: int
    issues: dict[str, IssueCounts]
    history_totals: list[int]
    history_issue_counts: list[int]


def counting_watermark_key(project_id: int, topic: str, partition: int) -> str:
    return f"{project_tag(project_id)}:wm:cnt:{topic}:{partition}"


def partition_slots(events: Sequence[CountedEvent]) -> dict[int, int]:
    """Partition -> its 1-based slot among the partitions of ``events``, in order of appearance."""
    slots: dict[int, int] = {}
    for event in events:
        slots.setdefault(event.partition, len(slots) + 1)
    return slots


class CountingCall:
    """Builds the ``counting.lua`` call of one project and reads its reply."""

    def __init__(self, *, topic: str, bucket_size_seconds: int, history_buckets: int) -> None:
        self._topic = topic
        self._bucket_size_seconds = bucket_size_seconds
        self._history_buckets = history_buckets

    def keys(self, project_id: int, slots: Mapping[int, int]) -> list[str]:
        """KEYS of the call for the partitions of ``slots`` (``partition_slots``)."""
        return [counting_watermark_key(project_id, self._topic, p) for p in slots]

    def fixed_args(self, project_id: int, now: float, ring_buckets: int) -> list[str | int]:
        """ARGV before the events; each event then takes 4 slots (see counting.lua).
        ``ring_buckets``: the size of each issue's ring for an adaptive project, else 0."""
        return [
            project_tag(project_id),
            repr(now),
            self._bucket_size_seconds,
            self._history_buckets,
            BUCKET_TTL_SLACK_SECONDS,
            WATERMARK_TTL_SECONDS,
            ring_buckets,
        ]

    def parse(self, reply: Sequence[Any], ring_buckets: int) -> ProjectCounts:
        bucket_start, totals, issue_counts, *issue_rows = reply
        current_index = int(bucket_start) // self._bucket_size_seconds
        issues = {}
        for issue_id_raw, *counts in issue_rows:
            issue_id = issue_id_raw.decode() if isinstance(issue_id_raw, bytes) else issue_id_raw
            if ring_buckets:
                ring = counts[0] if counts else None
                issues[issue_id] = ring_counts(issue_id, ring, current_index, ring_buckets)
            else:
                current, *history = counts
                issues[issue_id] = IssueCounts(issue_id, int(current), [int(n) for n in history])
        return ProjectCounts(
            bucket_start=int(bucket_start),
            issues=issues,
            history_totals=[int(n) for n in totals],
            history_issue_counts=[int(n) for n in issue_counts],
        )


def ring_counts(
    issue_id: str, ring: bytes | None, current_index: int, ring_buckets: int
) -> IssueCounts:
    """An issue's counts read from its ring (layout in counting.lua): the current bucket, the
    ``ring_buckets - 1`` before it oldest first, and how many of those the ring has seen."""
    if not ring:
        return IssueCounts(issue_id, 0, [0] * (ring_buckets - 1), observed_buckets=0)
    words = array("I", ring)
    if sys.byteorder == "little":
        words.byteswap()
    newest, oldest = words[0], words[1]
    slots = words[2:].tolist()
    # Bucket i sits in slot i % r; rotated so the window's first bucket comes first.
    first = current_index - ring_buckets + 1
    start = first % ring_buckets
    counts = slots[start:] + slots[:start]
    # The slots that hold the window's buckets are one run: newer than both the ring's oldest and
    # r before its newest, and no newer than its newest.
    held_from = max(first, oldest, newest - ring_buckets + 1) - first
    held_to = min(current_index, newest) - first + 1
    counts[:held_from] = [0] * max(held_from, 0)
    if held_to < ring_buckets:
        counts[max(held_to, 0) :] = [0] * (ring_buckets - max(held_to, 0))
    observed = min(max(current_index - oldest, 0), ring_buckets - 1)
    return IssueCounts(issue_id, counts[-1], counts[:-1], observed_buckets=observed)
