"""The stall watchdog's rule, on an injected clock: events waiting and no commit for the limit ->
give up, once; a worker with nothing to do is never stalled."""

from __future__ import annotations

from worker.stall_watchdog import StallWatchdog, backlog


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def watchdog(clock: Clock, reasons: list[str], limit: float = 60.0) -> StallWatchdog:
    return StallWatchdog(limit=limit, give_up=reasons.append, clock=clock)


def test_events_waiting_without_a_commit_for_the_limit_give_up_once() -> None:
    clock, reasons = Clock(), []
    dog = watchdog(clock, reasons)

    dog.check(waiting=500, committed=1_000)
    clock.now += 59.9
    stalled_for = dog.check(waiting=500, committed=1_000)
    before_limit = list(reasons)
    clock.now += 0.1
    dog.check(waiting=500, committed=1_000)
    clock.now += 30
    dog.check(waiting=800, committed=1_000)

    assert (before_limit, round(stalled_for, 1)) == ([], 59.9)
    assert reasons == ["no offset committed for 60 s (limit 60 s) while 500 events wait"]
    assert dog.stalled


def test_commits_that_move_start_the_limit_again_even_with_events_waiting() -> None:
    clock, reasons = Clock(), []
    dog = watchdog(clock, reasons)

    dog.check(waiting=5_000, committed=100)
    for step in range(1, 10):
        clock.now += 50
        assert dog.check(waiting=5_000, committed=100 + step) == 0.0
    clock.now += 59
    assert dog.check(waiting=5_000, committed=109) == 59
    clock.now += 1
    dog.check(waiting=5_000, committed=109)

    assert reasons == ["no offset committed for 60 s (limit 60 s) while 5000 events wait"]


def test_a_worker_with_nothing_waiting_is_never_stalled_and_its_wait_does_not_count() -> None:
    clock, reasons = Clock(), []
    dog = watchdog(clock, reasons)

    for _ in range(10):
        clock.now += 3600
        assert dog.check(waiting=0, committed=7) == 0.0
    # Events arrive after a long idle hour: the limit counts from the last idle check.
    clock.now += 59
    dog.check(waiting=1, committed=7)

    assert reasons == []
    assert not dog.stalled


def test_backlog_counts_assigned_partitions_whose_end_and_offset_are_known() -> None:
    ends = {0: 100, 1: 50, 2: 70, 3: 10}
    offsets = {0: 40, 1: 50, 2: 80}

    # 0: 60 waiting; 1: none; 2: ahead of a stale end, none; 3: offset unknown; 4: no end.
    assert backlog(ends, offsets, {0, 1, 2, 3, 4}) == 60
    assert backlog(ends, offsets, {1, 2}) == 0
    assert backlog(ends, offsets, set()) == 0
