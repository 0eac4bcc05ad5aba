"""Stall watchdog: a worker that makes no progress while events wait for it ends itself, so that
whatever supervises it starts a fresh one.

After the broker was killed and restarted, Faust's consumer was seen to stop for good
(RELIABILITY.md): the process stayed up, served ``/metrics`` and consumed nothing, and its
consumer went on reporting the log ends it had last fetched, so the worker looked alive and idle.
The app tells the watchdog when a batch finished and, every few seconds, how many events wait:
the log end offsets read from the broker by a client of the worker's own (``log_end``), minus the
next offset to process. If events wait and no batch has finished for ``limit`` seconds, the
watchdog logs why and calls ``give_up`` (the app ends the process). Nothing is lost by that:
offsets are committed only for batches whose effects are durable, so the next worker starts
where this one stopped.

A worker with nothing to do is never stalled, however long it waits. While the broker cannot be
asked, the app keeps the last figures it read, so a broker or database outage longer than
``limit`` with events waiting ends the worker too; a fresh one then waits for the outage to end,
as this one would have.

Knows nothing of Faust: the app hands it the clock and what giving up means.
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
    # Seconds without a finished batch, events waiting, after which the worker counts as stalled.
    limit: float
    give_up: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    # When the worker last showed it is not stuck: a batch finished, or nothing was waiting.
    last_progress: float = field(init=False)
    stalled: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.last_progress = self.clock()

    def batch_finished(self) -> None:
        self.last_progress = self.clock()

    def check(self, waiting: int) -> float:
        """Called every few seconds with the number of events known to wait; returns the
        seconds the worker has been stalled so far (0 while nothing waits)."""
        now = self.clock()
        if waiting <= 0:
            self.last_progress = now
            return 0.0
        silent = now - self.last_progress
        if self.stalled or silent < self.limit:
            return silent
        self.stalled = True
        reason = (
            f"no batch finished for {silent:.0f} s (limit {self.limit:.0f} s) "
            f"while {waiting} events wait"
        )
        log.critical("stalled: %s; exiting so that a fresh worker takes over", reason)
        self.give_up(reason)
        return silent


def backlog(
    highwaters: Mapping[P, int], next_offsets: Mapping[P, int], assigned: Collection[P]
) -> int:
    """Events waiting in the ``assigned`` partitions: the log end offset (``highwaters``) minus
    the next offset to process, for partitions where both are known."""
    waiting = 0
    for tp in assigned:
        if tp in highwaters and tp in next_offsets:
            waiting += max(highwaters[tp] - next_offsets[tp], 0)
    return waiting
