"""The stack digest tells stacks apart by everything the frames stage and grouping read, whatever
the integers in them: JSON carries integers of any size, and so must the digest."""

from __future__ import annotations

from typing import Any

from tests.worker.events import decoded_record
from worker.fingerprint import computed_fingerprint, fingerprint_batch, stack_digest
from worker.records import EventRecord


def event_with_frame(**frame: Any) -> EventRecord:
    exception = {
        "type": "TypeError",
        "value": "x is undefined",
        "stacktrace": {"frames": [{"filename": "app/views.py", "function": "index", **frame}]},
    }
    return decoded_record(
        {
            "uuid": "0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d",
            "project_id": 7,
            "timestamp": "2026-11-26T06:00:00Z",
            "properties": {"$exception_list": [exception]},
        }
    )


def digest(**frame: Any) -> bytes:
    return stack_digest(event_with_frame(**frame).exceptions)


def test_integers_beyond_64_bits_in_a_frame_are_digested_and_told_apart() -> None:
    huge = 2**64

    assert digest(context={"n": huge}) == digest(context={"n": huge})
    assert digest(context={"n": huge}) != digest(context={"n": huge + 1})
    assert digest(lineno=-(2**63) - 1) != digest(lineno=-(2**63))


def test_an_event_with_a_huge_integer_in_its_stack_is_fingerprinted() -> None:
    record = event_with_frame(context={"n": 10**30})

    fingerprint_batch([record])

    assert record.fingerprint == computed_fingerprint(record.exceptions)
    assert record.stack_digest == stack_digest(record.exceptions)


def test_every_frame_field_and_each_kind_of_json_number_changes_the_digest() -> None:
    digests = {
        digest(),
        digest(lineno=1),
        digest(in_app=True),
        digest(resolved=False),
        digest(raw_id="r"),
        digest(symbol_set_ref="s"),
        digest(context={"n": 1}),
        digest(context={"n": 1.0}),
        digest(context={"n": True}),
        digest(context={"n": "1"}),
    }

    assert len(digests) == 10
