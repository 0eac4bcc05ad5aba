"""The guard that keeps each partition's events in offset order into the pipeline, which the
rebalance test showed Faust does not: after a rebalance it can drop a partition's queued events
and hand on later ones, which the Redis watermarks would then take as already counted."""

from __future__ import annotations

from worker.partition_order import MAX_READS_PER_GAP, PartitionOrder

Event = tuple[str, int]  # (partition, offset)


def position(event: Event) -> Event:
    return event


def order(next_offsets: dict[str, int], assigned: set[str]) -> PartitionOrder[str]:
    guard: PartitionOrder[str] = PartitionOrder(dict(next_offsets))
    guard.on_assigned(assigned)
    return guard


def test_events_that_follow_on_go_through_in_batch_order() -> None:
    guard = order({"a": 10}, {"a", "b"})

    admission = guard.admit([("a", 10), ("b", 3), ("a", 11), ("b", 4)], position)

    assert admission.ready == [("a", 10), ("b", 3), ("a", 11), ("b", 4)]
    assert admission.read_again == {}


def test_after_a_gap_the_partition_is_held_back_and_read_again_from_the_gap() -> None:
    guard = order({"a": 10, "b": 5}, {"a", "b"})

    admission = guard.admit([("a", 10), ("a", 14), ("b", 5), ("a", 15), ("b", 6)], position)

    assert admission.ready == [("a", 10), ("b", 5), ("b", 6)]
    assert admission.read_again == {"a": 11}


def test_a_replay_from_below_is_admitted_and_what_follows_it_too() -> None:
    guard = order({"a": 50}, {"a"})

    admission = guard.admit([("a", 40), ("a", 41), ("a", 42)], position)

    assert admission.ready == [("a", 40), ("a", 41), ("a", 42)]
    assert admission.read_again == {}


def test_events_of_a_partition_assigned_elsewhere_are_held_back() -> None:
    guard = order({"a": 10, "b": 7}, {"a"})

    admission = guard.admit([("b", 7), ("a", 10)], position)

    assert admission.ready == [("a", 10)]
    assert admission.read_again == {}


def test_a_partition_that_comes_back_is_read_from_wherever_its_new_events_start() -> None:
    guard = order({"a": 10}, {"a"})
    guard.on_assigned(set())
    guard.on_assigned({"a"})

    # Another worker moved the committed offset on meanwhile: no gap to read again.
    assert guard.admit([("a", 500)], position).ready == [("a", 500)]
    assert guard.next_offsets == {}


def test_a_gap_still_there_after_reading_again_is_taken_as_real() -> None:
    # A transaction marker takes an offset that no event ever has.
    guard = order({"a": 10}, {"a"})

    for _ in range(MAX_READS_PER_GAP):
        assert guard.admit([("a", 11)], position).read_again == {"a": 10}
    admission = guard.admit([("a", 11), ("a", 12)], position)

    assert admission.ready == [("a", 11), ("a", 12)]
    assert admission.read_again == {}
