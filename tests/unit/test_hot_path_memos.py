"""What the hot path remembers or derives lazily gives exactly what computing it afresh gives:
fingerprints remembered by stack digest, and the derived properties suppression rules read."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from tests.worker.events import decoded_record
from worker.fingerprint import computed_fingerprint, fingerprint_batch, stack_digest
from worker.garbage import BatchGarbageCollector
from worker.records import EventRecord
from worker.suppression import EventProperties, derive_properties


def exception(value: str, *, resolved: bool = True, function: str = "index") -> dict[str, Any]:
    frame = {"filename": "app/views.py", "function": function, "in_app": True, "resolved": resolved}
    return {"type": "TypeError", "value": value, "stacktrace": {"frames": [frame]}}


def record(*exceptions: dict[str, Any], **properties: Any) -> EventRecord:
    document = {
        "uuid": "0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d",
        "project_id": 7,
        "timestamp": "2026-11-26T06:00:00Z",
        "properties": {"$exception_list": list(exceptions), **properties},
    }
    return decoded_record(document)


def test_remembered_fingerprints_equal_computed_ones_whatever_the_message() -> None:
    resolved = [record(exception("x is undefined")), record(exception("y is undefined"))]
    unresolved = [
        record(exception("x is undefined", resolved=False)),
        record(exception("y is undefined", resolved=False)),
    ]

    fingerprint_batch([*resolved, *unresolved, *resolved, *unresolved])

    for each in [*resolved, *unresolved]:
        assert each.fingerprint == computed_fingerprint(each.exceptions)
    # A resolved stack groups without its message; an unresolved one with it.
    assert resolved[0].fingerprint == resolved[1].fingerprint
    assert unresolved[0].fingerprint != unresolved[1].fingerprint


def test_the_stack_digest_follows_frames_types_and_the_messages_grouping_reads() -> None:
    def digest(*exceptions: dict[str, Any]) -> bytes:
        return stack_digest(record(*exceptions).exceptions)

    same = digest(exception("a"))
    assert digest(exception("b")) == same  # resolved: the message is not read
    assert digest(exception("a", function="other")) != same
    assert digest(exception("a", resolved=False)) != digest(exception("b", resolved=False))
    assert digest(exception("a"), exception("a")) != same


def test_a_manual_fingerprint_still_gets_its_stack_digest() -> None:
    manual = record(exception("x"), **{"$exception_fingerprint": "checkout"})

    fingerprint_batch([manual])

    assert manual.fingerprint == "checkout"
    assert manual.stack_digest == stack_digest(manual.exceptions)


def test_event_properties_read_as_the_sent_ones_with_the_derived_laid_over() -> None:
    sent = {"$browser": "Firefox", "$exception_types": ["sent by the client"]}
    each = record(exception("x"), exception("y"), **sent)
    derived = derive_properties(each.exceptions, "fp", "v1")

    properties = EventProperties(each.properties, each.exceptions, "fp", "v1")

    assert dict(properties) == {**each.properties, **derived}
    assert properties["$exception_types"] == ["TypeError"]
    assert properties.get("$browser") == "Firefox"
    assert properties.get("$missing") is None
    assert len(properties) == len({**each.properties, **derived})


def test_garbage_left_in_cycles_is_collected_after_each_batch() -> None:
    class Node:
        other: Any = None

    collector = BatchGarbageCollector(full_collection_every=2)
    gc.disable()
    try:
        first, second = Node(), Node()
        first.other, second.other = second, first
        alive = weakref.ref(first)
        del first, second

        found = collector.after_batch()

        assert alive() is None
        assert found >= 2
    finally:
        gc.enable()


def test_a_cycle_that_outlived_a_batch_is_collected_at_the_next_middle_collection() -> None:
    class Node:
        other: Any = None

    collector = BatchGarbageCollector(middle_collection_every=3, full_collection_every=100)
    gc.disable()
    try:
        first, second = Node(), Node()
        first.other, second.other = second, first
        alive = weakref.ref(first)
        collector.after_batch()  # still referenced: it survives into the middle generation
        del first, second

        collector.after_batch()  # the youngest generation only
        assert alive() is not None

        collector.after_batch()  # the third batch walks the middle generation
        assert alive() is None
    finally:
        gc.enable()
