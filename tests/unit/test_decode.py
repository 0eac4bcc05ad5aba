"""Decoding and validation of input messages: every dead-letter reason decode owns, at its exact
boundary, and the fields a valid event decodes into."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import DeadLetterReason
from worker.decode import DecodedEvent, DecodeLimits, Rejection, decode_batch, decode_event
from worker.outcomes import Outcome
from worker.records import EventRecord, SourceMessage

LIMITS = DecodeLimits(max_message_bytes=1_000_000, max_exceptions=50, max_frames_per_exception=500)
EVENT_UUID = "0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d"


def event(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "uuid": EVENT_UUID,
        "project_id": 7,
        "timestamp": "2026-11-26T06:00:00Z",
        "event": "$exception",
        "distinct_id": "user-1",
        "properties": {
            "$exception_list": [
                {
                    "type": "TypeError",
                    "value": "x is undefined",
                    "stacktrace": {
                        "type": "resolved",
                        "frames": [{"filename": "app.js", "function": "f", "in_app": True}],
                    },
                }
            ],
            "$browser": "Firefox",
        },
    }
    document.update(changes)
    return document


def with_properties(**properties: Any) -> dict[str, Any]:
    document = event()
    document["properties"] = {**document["properties"], **properties}
    return document


def rejection(payload: bytes | dict[str, Any], limits: DecodeLimits = LIMITS) -> Rejection:
    raw = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    result = decode_event(raw, limits)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def decoded(payload: bytes | dict[str, Any], limits: DecodeLimits = LIMITS) -> DecodedEvent:
    raw = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    result = decode_event(raw, limits)
    assert isinstance(result, DecodedEvent), f"expected an event, got {result!r}"
    return result


def nested_properties(depth: int) -> dict[str, Any]:
    """An event whose document is exactly ``depth`` containers deep."""
    value: Any = 1
    for _ in range(depth - 2):  # the event object and its properties are the first two levels
        value = {"n": value}
    return with_properties(nest=value)


def test_a_valid_event_decodes_into_its_typed_view() -> None:
    result = decoded(event())

    assert result.event.project_id == 7
    assert result.event_uuid == uuid.UUID(EVENT_UUID)
    assert result.timestamp == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    assert [e.type for e in result.exception_properties.exception_list] == ["TypeError"]
    assert result.exception_properties.exception_list[0].stacktrace.frames[0].function == "f"
    assert result.document["properties"]["$browser"] == "Firefox"


def test_a_timestamp_with_an_offset_is_converted_to_utc_and_one_without_is_taken_as_utc() -> None:
    shifted = decoded(event(timestamp="2026-11-26T08:30:00.250+02:00"))
    naive = decoded(event(timestamp="2026-11-26 06:30:00"))

    assert shifted.timestamp == datetime(2026, 11, 26, 6, 30, 0, 250_000, tzinfo=UTC)
    assert naive.timestamp == datetime(2026, 11, 26, 6, 30, tzinfo=UTC)


def test_a_message_over_the_size_limit_is_refused_before_parsing() -> None:
    limits = DecodeLimits(max_message_bytes=100, max_exceptions=50, max_frames_per_exception=500)
    not_even_json = b"x" * 101

    result = rejection(not_even_json, limits)

    assert result.reason is DeadLetterReason.MESSAGE_TOO_LARGE
    assert result.error == "message is 101 bytes; the limit is 100"


def test_a_message_exactly_at_the_size_limit_is_accepted() -> None:
    raw = msgspec.json.encode(event())
    limits = DecodeLimits(max_message_bytes=len(raw), max_exceptions=50, max_frames_per_exception=1)

    assert isinstance(decode_event(raw, limits), DecodedEvent)


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b'{"uuid": }', b"nul", b"{} trailing", b"\xff\xfe{}", b'{"a": "caf\xe9"}'],
    ids=["empty", "truncated", "bad-value", "bad-literal", "trailing", "utf16-bom", "latin1"],
)
def test_bytes_that_are_not_json_or_not_utf8_are_invalid_json(payload: bytes) -> None:
    assert rejection(payload).reason is DeadLetterReason.INVALID_JSON


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(b"[1, 2]", "array"), (b'"text"', "string"), (b"42", "number"), (b"null", "null")],
)
def test_json_that_is_not_an_object_is_refused(payload: bytes, kind: str) -> None:
    result = rejection(payload)

    assert result.reason is DeadLetterReason.NOT_AN_OBJECT
    assert result.error == f"expected a JSON object, got {kind}"


def test_nesting_of_64_levels_is_accepted_and_65_refused() -> None:
    assert isinstance(
        decode_event(msgspec.json.encode(nested_properties(64)), LIMITS), DecodedEvent
    )

    result = rejection(nested_properties(65))

    assert result.reason is DeadLetterReason.TOO_DEEPLY_NESTED
    assert result.error == "JSON nesting is deeper than 64 levels"


def test_a_nesting_bomb_is_refused_without_exhausting_the_stack() -> None:
    bomb = b"[" * 200_000 + b"]" * 200_000

    assert rejection(bomb).reason is DeadLetterReason.TOO_DEEPLY_NESTED


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({k: v for k, v in event().items() if k != "uuid"}, "Object missing required field `uuid`"),
        (
            {k: v for k, v in event().items() if k != "project_id"},
            "Object missing required field `project_id`",
        ),
        (
            {k: v for k, v in event().items() if k != "timestamp"},
            "Object missing required field `timestamp`",
        ),
        (event(project_id="7"), "Expected `int`, got `str` - at `project_id`"),
        (event(project_id=True), "Expected `int`, got `bool` - at `project_id`"),
        (event(uuid=12), "Expected `str`, got `int` - at `uuid`"),
        (event(properties=[]), "Expected `object`, got `array` - at `properties`"),
        (
            with_properties(**{"$exception_list": {"type": "E"}}),
            "Expected `array`, got `object` - at `properties.$exception_list`",
        ),
        (
            with_properties(**{"$exception_list": [{"value": "no type"}]}),
            "Object missing required field `type` - at `properties.$exception_list[0]`",
        ),
        (
            with_properties(
                **{"$exception_list": [{"type": "E", "stacktrace": {"frames": [{"lineno": "9"}]}}]}
            ),
            "Expected `int | null`, got `str` - at "
            "`properties.$exception_list[0].stacktrace.frames[0].lineno`",
        ),
        (
            with_properties(**{"$exception_fingerprint": 12}),
            "Expected `str | null`, got `int` - at `properties.$exception_fingerprint`",
        ),
        (
            with_properties(**{"$release": ["v1"]}),
            "Expected `str | null`, got `array` - at `properties.$release`",
        ),
    ],
    ids=[
        "missing-uuid",
        "missing-project",
        "missing-timestamp",
        "project-as-text",
        "project-as-bool",
        "uuid-as-number",
        "properties-as-array",
        "exception-list-as-object",
        "exception-without-type",
        "frame-line-as-text",
        "fingerprint-as-number",
        "release-as-array",
    ],
)
def test_wrong_types_and_missing_fields_are_schema_violations_naming_the_field(
    document: dict[str, Any], error: str
) -> None:
    result = rejection(document)

    assert result.reason is DeadLetterReason.SCHEMA_VIOLATION
    assert result.error == error


@pytest.mark.parametrize(
    "value",
    ["not-a-uuid", "0192e5b17c3a7d1e9f004b6f1f0a2c3d", "{0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d}"],
)
def test_a_uuid_that_is_not_a_hyphenated_uuid_is_invalid(value: str) -> None:
    assert rejection(event(uuid=value)).reason is DeadLetterReason.INVALID_UUID


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-11-26", "2026-13-01T00:00:00Z", "2026-11-26T25:00:00Z", ""]
)
def test_a_timestamp_that_is_not_an_iso_date_time_is_invalid(value: str) -> None:
    assert rejection(event(timestamp=value)).reason is DeadLetterReason.INVALID_TIMESTAMP


@pytest.mark.parametrize("exception_list", [[], None], ids=["empty", "null"])
def test_an_empty_or_null_exception_list_is_refused(exception_list: list[Any] | None) -> None:
    result = rejection(with_properties(**{"$exception_list": exception_list}))

    assert result.reason is DeadLetterReason.EMPTY_EXCEPTION_LIST


def test_a_missing_exception_list_is_refused_as_empty() -> None:
    document = event()
    del document["properties"]["$exception_list"]

    assert rejection(document).reason is DeadLetterReason.EMPTY_EXCEPTION_LIST


def test_50_exceptions_are_accepted_and_51_refused() -> None:
    entry = {"type": "E"}

    assert (
        len(
            decoded(
                with_properties(**{"$exception_list": [entry] * 50})
            ).exception_properties.exception_list
        )
        == 50
    )

    result = rejection(with_properties(**{"$exception_list": [entry] * 51}))

    assert result.reason is DeadLetterReason.TOO_MANY_EXCEPTIONS
    assert result.error == "51 exceptions; the limit is 50"


def test_500_frames_are_accepted_and_501_refused() -> None:
    def exception_with(frame_count: int) -> dict[str, Any]:
        frames = [{"function": f"f{i}"} for i in range(frame_count)]
        return {"type": "E", "stacktrace": {"frames": frames}}

    accepted = decoded(with_properties(**{"$exception_list": [exception_with(500)]}))
    assert len(accepted.exception_properties.exception_list[0].stacktrace.frames) == 500

    result = rejection(
        with_properties(**{"$exception_list": [exception_with(1), exception_with(501)]})
    )

    assert result.reason is DeadLetterReason.TOO_MANY_FRAMES
    assert result.error == "exception 1 has 501 frames; the limit is 500"


def test_decode_batch_fills_valid_records_and_dead_letters_the_others() -> None:
    good = EventRecord(SourceMessage("in", 0, 1, b"7", msgspec.json.encode(event())))
    bad = EventRecord(SourceMessage("in", 0, 2, None, b"{oops"))

    decode_batch([good, bad], LIMITS)

    assert good.outcome is None
    assert good.project_id == 7
    assert good.event_uuid == uuid.UUID(EVENT_UUID)
    assert [e.type for e in good.exceptions] == ["TypeError"]
    assert bad.outcome is Outcome.DEAD_LETTERED
    assert bad.dead_letter is not None
    assert bad.dead_letter.reason is DeadLetterReason.INVALID_JSON


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_an_event_or_a_rejection_never_an_exception(payload: bytes) -> None:
    assert isinstance(decode_event(payload, LIMITS), DecodedEvent | Rejection)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(event())), JSON_VALUES), JSON_VALUES)
def test_any_json_shaped_like_an_event_decodes_or_is_rejected_never_raises(
    fields: dict[str, Any], exception_list: Any
) -> None:
    document = {**event(), **fields}
    if isinstance(document.get("properties"), dict):
        document["properties"]["$exception_list"] = exception_list

    assert isinstance(decode_event(msgspec.json.encode(document), LIMITS), DecodedEvent | Rejection)
