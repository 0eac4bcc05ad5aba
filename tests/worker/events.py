"""Builders of input messages for the worker tests: valid exception events and one poison message
per dead-letter reason that decode owns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.events import DeadLetterReason, ExceptionEvent, ExceptionProperties
from worker.fingerprint import fingerprint_batch
from worker.records import EventRecord, SourceMessage


def exception_event(
    project_id: int,
    *,
    error_type: str = "TypeError",
    function: str = "index",
    value: str = "x is undefined",
    release: str | None = None,
    symbol_set_ref: str | None = None,
    timestamp: str = "2026-11-26T06:00:00Z",
    **properties: Any,
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "platform": "python",
        "filename": "app/views.py",
        "function": function,
        "lineno": 10,
        "colno": 4,
        "in_app": True,
        "resolved": True,
    }
    if symbol_set_ref is not None:
        frame["symbol_set_ref"] = symbol_set_ref
    props: dict[str, Any] = {
        "$exception_list": [
            {
                "type": error_type,
                "value": value,
                "mechanism": {"handled": False, "type": "onerror"},
                "stacktrace": {"type": "resolved", "frames": [frame]},
            }
        ],
        **properties,
    }
    if release is not None:
        props["$release"] = release
    return {
        "uuid": str(uuid.uuid4()),
        "project_id": project_id,
        "timestamp": timestamp,
        "event": "$exception",
        "distinct_id": "user-1",
        "properties": props,
    }


def iso(epoch_seconds: float) -> str:
    """An event timestamp, as the ingestion pipeline writes it."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")


def encode(document: dict[str, Any]) -> bytes:
    return msgspec.json.encode(document)


def poison_messages(project_id: int) -> list[tuple[DeadLetterReason, bytes]]:
    """At least one message per input-side reason (``unknown_project`` needs a project that does
    not exist and ``processing_error`` a failing dependency, so neither is here)."""

    def event_with(**changes: Any) -> bytes:
        return encode({**exception_event(project_id), **changes})

    def properties_with(**changes: Any) -> bytes:
        document = exception_event(project_id)
        document["properties"].update(changes)
        return encode(document)

    def nested(depth: int) -> Any:
        value: Any = "deep"
        for _ in range(depth):
            value = [value]
        return value

    frames = [{"function": f"f{i}", "in_app": True} for i in range(501)]
    return [
        (DeadLetterReason.MESSAGE_TOO_LARGE, properties_with(padding="x" * 1_000_100)),
        (DeadLetterReason.INVALID_JSON, b'{"uuid": "broken'),
        (DeadLetterReason.INVALID_JSON, b'{"uuid": "\xff\xfe"}'),
        (DeadLetterReason.TOO_DEEPLY_NESTED, properties_with(nested=nested(80))),
        (DeadLetterReason.NOT_AN_OBJECT, b'["an", "array"]'),
        (DeadLetterReason.SCHEMA_VIOLATION, event_with(project_id="seven")),
        (DeadLetterReason.INVALID_UUID, event_with(uuid="not-a-uuid")),
        (DeadLetterReason.INVALID_TIMESTAMP, event_with(timestamp="last tuesday")),
        (DeadLetterReason.EMPTY_EXCEPTION_LIST, properties_with(**{"$exception_list": []})),
        (
            DeadLetterReason.TOO_MANY_EXCEPTIONS,
            properties_with(**{"$exception_list": [{"type": "E"}] * 51}),
        ),
        (
            DeadLetterReason.TOO_MANY_FRAMES,
            properties_with(
                **{"$exception_list": [{"type": "E", "stacktrace": {"frames": frames}}]}
            ),
        ),
    ]


def decoded_record(document: dict[str, Any], offset: int = 0) -> EventRecord:
    """The record of ``document`` as the decode stage leaves it."""
    record = EventRecord(SourceMessage("in", 0, offset, None, encode(document)))
    record.document = document
    record.event = msgspec.convert(document, ExceptionEvent)
    record.exception_properties = msgspec.convert(document["properties"], ExceptionProperties)
    return record


def records(*documents: dict[str, Any]) -> list[EventRecord]:
    """Decoded, fingerprinted records of ``documents`` (the stages before issues)."""
    batch = [decoded_record(document, offset) for offset, document in enumerate(documents)]
    fingerprint_batch(batch)
    return batch
