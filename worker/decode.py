"""Decode and validate raw input messages against the contract in ``schemas/`` (pure, no I/O).

Owns every input-side dead-letter reason. It must never raise on any input bytes and never parse
more than it has checked: the size cap comes before parsing, the depth cap before typed validation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from schemas.events import (
    TIMESTAMP_PATTERN,
    UUID_PATTERN,
    DeadLetterReason,
    ExceptionEvent,
    ExceptionProperties,
)
from schemas.settings import Settings
from worker.records import EventRecord, in_flight

T = TypeVar("T")

# Real events nest a handful of levels (event -> properties -> list -> frame -> context); 64 leaves
# room for rich context while keeping every later walk over the document cheap and stack-safe.
MAX_NESTING_DEPTH = 64
EXCEPTION_LIST = "$exception_list"

# Every byte but the two that open a container: deleting them leaves one byte per opening bracket,
# which counts both kinds in one pass over the payload.
_ALL_BUT_OPENING_BRACKETS = bytes(sorted(set(range(256)) - set(b"{[")))

_UUID = re.compile(UUID_PATTERN)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_ERROR_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_message_bytes: int
    max_exceptions: int
    max_frames_per_exception: int
    max_nesting_depth: int = MAX_NESTING_DEPTH

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        return cls(
            max_message_bytes=settings.max_message_bytes,
            max_exceptions=settings.max_exceptions_per_event,
            max_frames_per_exception=settings.max_frames_per_exception,
        )


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    document: dict[str, Any]
    event: ExceptionEvent
    exception_properties: ExceptionProperties
    event_uuid: uuid.UUID
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: DeadLetterReason
    error: str


class _Invalid(Exception):
    """Carries a rejection from any depth of the checks to ``decode_event``; never escapes it."""

    def __init__(self, reason: DeadLetterReason, error: str) -> None:
        super().__init__(error)
        self.rejection = Rejection(reason, error)


def decode_batch(batch: Sequence[EventRecord], limits: DecodeLimits) -> Sequence[EventRecord]:
    """Decode every in-flight record; a message that fails is finished as dead-lettered."""
    for record in in_flight(batch):
        result = decode_event(record.source.value, limits)
        if isinstance(result, Rejection):
            record.reject(result.reason, result.error)
            continue
        record.document = result.document
        record.event = result.event
        record.exception_properties = result.exception_properties
        record.event_uuid = result.event_uuid
        record.timestamp = result.timestamp
    return batch


def decode_event(payload: bytes, limits: DecodeLimits) -> DecodedEvent | Rejection:
    """The validated event in ``payload``, or why it is not one."""
    try:
        return _decode(payload, limits)
    except _Invalid as invalid:
        return invalid.rejection


def _decode(payload: bytes, limits: DecodeLimits) -> DecodedEvent:
    if len(payload) > limits.max_message_bytes:
        raise _Invalid(
            DeadLetterReason.MESSAGE_TOO_LARGE,
            f"message is {len(payload)} bytes; the limit is {limits.max_message_bytes}",
        )
    document = _parse_json(payload)
    if not isinstance(document, dict):
        raise _Invalid(
            DeadLetterReason.NOT_AN_OBJECT, f"expected a JSON object, got {_json_type(document)}"
        )
    if _nesting_exceeds(payload, document, limits.max_nesting_depth):
        raise _Invalid(
            DeadLetterReason.TOO_DEEPLY_NESTED,
            f"JSON nesting is deeper than {limits.max_nesting_depth} levels",
        )
    event = _convert(document, ExceptionEvent, "")
    event_uuid = _parse_uuid(event.uuid)
    timestamp = _parse_timestamp(event.timestamp)
    _check_exception_list_bounds(event.properties.get(EXCEPTION_LIST), limits)
    exception_properties = _convert(event.properties, ExceptionProperties, "properties")
    return DecodedEvent(document, event, exception_properties, event_uuid, timestamp)


def _parse_json(payload: bytes) -> Any:
    try:
        return msgspec.json.decode(payload)
    except RecursionError:
        # msgspec stops at the interpreter's recursion limit: that is a bomb, not a syntax error.
        raise _Invalid(
            DeadLetterReason.TOO_DEEPLY_NESTED, "JSON nesting exceeds the parser's limit"
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _Invalid(DeadLetterReason.INVALID_JSON, str(exc)) from None


def _nesting_exceeds(payload: bytes, document: dict[str, Any], limit: int) -> bool:
    # Level by level, one comprehension per level, so that the walk stays in C as much as it can;
    # the parser only ever builds exact dicts and lists, hence ``type() is`` over isinstance.
    # Each container it built opened with a bracket of its own in the payload: with ``unseen``
    # brackets left (inside strings too), nothing nests deeper than ``depth + unseen``. That ends
    # most walks before the frames' fields, where nearly all of their work was.
    unseen = len(payload.translate(None, _ALL_BUT_OPENING_BRACKETS)) - 1
    level: list[Any] = [document]
    for depth in range(1, limit + 1):
        if depth + unseen <= limit:
            return False
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return False
        unseen -= len(level)
    return True


def _convert(value: Any, model: type[T], path_prefix: str) -> T:
    try:
        return msgspec.convert(value, model)
    except msgspec.ValidationError as exc:
        raise _Invalid(DeadLetterReason.SCHEMA_VIOLATION, _located(str(exc), path_prefix)) from None


def _located(message: str, path_prefix: str) -> str:
    """msgspec's error with its ``$``-rooted path rewritten from the event's root."""

    def rewrite(match: re.Match[str]) -> str:
        path = f"{path_prefix}{match['path']}".removeprefix(".")
        return f" - at `{path}`"

    if _ERROR_PATH.search(message) is None and path_prefix:
        return f"{message} - at `{path_prefix}`"
    return _ERROR_PATH.sub(rewrite, message)


def _parse_uuid(value: str) -> uuid.UUID:
    if _UUID.match(value) is None:
        raise _Invalid(
            DeadLetterReason.INVALID_UUID, f"uuid {value[:100]!r} is not a hyphenated UUID"
        )
    return uuid.UUID(value)


def _parse_timestamp(value: str) -> datetime:
    try:
        if _TIMESTAMP.match(value) is None:
            raise ValueError("not an ISO 8601 date-time")
        parsed = datetime.fromisoformat(value)
        # The ingestion pipeline writes UTC: a timestamp without an offset is taken as UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    # OverflowError: an offset that moves year 1 or 9999 out of the calendar, in UTC.
    except (ValueError, OverflowError) as exc:
        raise _Invalid(
            DeadLetterReason.INVALID_TIMESTAMP, f"timestamp {value[:100]!r}: {exc}"
        ) from None


def _check_exception_list_bounds(exception_list: Any, limits: DecodeLimits) -> None:
    """The checks with their own reasons, made on the raw list so that an oversized list is
    refused before anything converts it (type errors are left to the conversion)."""
    if exception_list is None or exception_list == []:
        raise _Invalid(
            DeadLetterReason.EMPTY_EXCEPTION_LIST,
            f"properties.{EXCEPTION_LIST} is missing or empty",
        )
    if not isinstance(exception_list, list):
        return
    if len(exception_list) > limits.max_exceptions:
        raise _Invalid(
            DeadLetterReason.TOO_MANY_EXCEPTIONS,
            f"{len(exception_list)} exceptions; the limit is {limits.max_exceptions}",
        )
    for index, entry in enumerate(exception_list):
        frame_count = len(_raw_frames(entry))
        if frame_count > limits.max_frames_per_exception:
            raise _Invalid(
                DeadLetterReason.TOO_MANY_FRAMES,
                f"exception {index} has {frame_count} frames; "
                f"the limit is {limits.max_frames_per_exception}",
            )


def _raw_frames(entry: Any) -> list[Any]:
    stacktrace = entry.get("stacktrace") if isinstance(entry, dict) else None
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    return frames if isinstance(frames, list) else []


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
