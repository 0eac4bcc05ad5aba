"""Stall watchdog: a worker whose consumer group stops committing while events wait ends
itself, so that whatever supervises it starts a fresh one.

After the broker was killed and restarted, Faust's consumer was seen to stop for good
(RELIABILITY.md): its group coordinator was never found again, so nothing was fetched or
committed; the process stayed up and served ``/metrics``, and the consumer went on reporting the
log ends of its last fetch, so the worker looked alive and idle. Every few seconds the app tells
the watchdog what the broker itself says (``broker_offsets``): how many events of the assigned
partitions the group has not committed (log end minus committed offset) and the committed
offsets' sum. Progress is that sum growing. If events wait and it has not grown for ``limit``
seconds, the watchdog logs why and calls ``give_up`` (the app ends the process). Nothing is lost
by that: offsets are committed only for batches whose effects are durable, so the next worker
starts from the last commit.

A worker with nothing to do is never stalled, however long it waits. While the broker cannot be
asked, the app keeps the last figures it read, so a broker or database outage longer than
``limit`` with events waiting ends the worker too; a fresh one then waits for the outage to end,
as this one would have.

Knows nothing of Faust or Kafka clients: the app hands it the figures, the clock and what giving
up means.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Hashable)

# The exit status of a worker that gave up on a stall: EX_TEMPFAIL, starting it again is the remedy.
EXIT_STALLED = 75


@dataclass(slots=True)
class StallWatchdog:
    # Seconds without a commit, events waiting, after which the worker counts as stalled.
    limit: float
    give_up: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    # When the worker last showed it is not stuck: its commits moved, or nothing was waiting.
    last_progress: float = field(init=False)
    stalled: bool = field(default=False, init=False)
    _committed: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.last_progress = self.clock()

    def check(self, waiting: int, committed: int) -> float:
        """Called every few seconds with the events waiting and the sum of the committed offsets
        of the assigned partitions; returns how long the worker has been stalled (0 while it
        moves or nothing waits)."""
        now = self.clock()
        moved = self._committed is not None and committed > self._committed
        self._committed = committed
        if waiting <= 0 or moved:
            self.last_progress = now
            return 0.0
        silent = now - self.last_progress
        if self.stalled or silent < self.limit:
            return silent
        self.stalled = True
        reason = (
            f"no offset committed for {silent:.0f} s (limit {self.limit:.0f} s) "
            f"while {waiting} events wait"
        )
        log.critical("stalled: %s; exiting so that a fresh worker takes over", reason)
        self.give_up(reason)
        return silent


def backlog(ends: Mapping[P, int], offsets: Mapping[P, int], assigned: Collection[P]) -> int:
    """Events after ``offsets`` (committed, or next to process) up to the log ``ends`` in the
    ``assigned`` partitions where both are known."""
    waiting = 0
    for tp in assigned:
        if tp in ends and tp in offsets:
            waiting += max(ends[tp] - offsets[tp], 0)
    return waiting
