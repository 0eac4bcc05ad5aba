"""The stall watchdog's rule, on an injected clock: events waiting and no batch finished for the
limit -> give up, once; a worker with nothing to do is never stalled."""

from __future__ import annotations

from worker.stall_watchdog import StallWatchdog, backlog


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def watchdog(clock: Clock, reasons: list[str], limit: float = 60.0) -> StallWatchdog:
    return StallWatchdog(limit=limit, give_up=reasons.append, clock=clock)


def test_events_waiting_without_a_finished_batch_for_the_limit_give_up_once() -> None:
    clock, reasons = Clock(), []
    dog = watchdog(clock, reasons)

    clock.now += 59.9
    stalled_for = dog.check(waiting=500)
    before_limit = list(reasons)
    clock.now += 0.1
    dog.check(waiting=500)
    clock.now += 30
    dog.check(waiting=500)

    assert (before_limit, round(stalled_for, 1)) == ([], 59.9)
    assert reasons == ["no batch finished for 60 s (limit 60 s) while 500 events wait"]
    assert dog.stalled


def test_a_finished_batch_starts_the_limit_again() -> None:
    clock, reasons = Clock(), []
    dog = watchdog(clock, reasons)

    clock.now += 50
    dog.batch_finished()
    clock.now += 50
    dog.check(waiting=10)
    clock.now += 10
    dog.check(waiting=10)

    assert reasons == ["no batch finished for 60 s (limit 60 s) while 10 events wait"]


def test_a_worker_with_nothing_waiting_is_never_stalled_and_its_wait_does_not_count() -> None:
    clock, reasons = Clock(), []
    dog = watchdog(clock, reasons)

    for _ in range(10):
        clock.now += 3600
        assert dog.check(waiting=0) == 0.0
    # Events arrive after a long idle hour: the limit counts from the last idle check.
    clock.now += 59
    dog.check(waiting=1)

    assert reasons == []
    assert not dog.stalled


def test_backlog_counts_assigned_partitions_whose_end_and_position_are_known() -> None:
    highwaters = {0: 100, 1: 50, 2: 70, 3: 10}
    next_offsets = {0: 40, 1: 50, 2: 80}

    # 0: 60 waiting; 1: none; 2: ahead of a stale end, none; 3: position unknown; 4: no end.
    assert backlog(highwaters, next_offsets, {0, 1, 2, 3, 4}) == 60
    assert backlog(highwaters, next_offsets, {1, 2}) == 0
    assert backlog(highwaters, next_offsets, set()) == 0
