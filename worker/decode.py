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

from schemas.events import ExceptionEntry, ExceptionEvent
from schemas.settings import Settings
from worker.outcomes import DeadLetterReason
from worker.records import EventRecord, in_flight

# Real events nest a handful of levels (event -> properties -> list -> frame -> context); 64 leaves
# room for rich context while keeping every later walk over the document cheap and stack-safe.
MAX_NESTING_DEPTH = 64

EXCEPTION_LIST_KEY = "$exception_list"
# Optional properties with a meaning to spikewatch: when present and not null they must be text.
TEXT_PROPERTIES = ("$exception_fingerprint", "$issue_name", "$issue_description", "$release")

T = TypeVar("T")

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
    event_uuid: uuid.UUID
    timestamp: datetime
    exceptions: list[ExceptionEntry]


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: DeadLetterReason
    error: str


class _Invalid(Exception):
    """Unwinds the checks to ``decode_event`` with the rejection; never escapes this module."""

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
        record.event_uuid = result.event_uuid
        record.timestamp = result.timestamp
        record.exceptions = result.exceptions
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
            DeadLetterReason.NOT_AN_OBJECT,
            f"expected a JSON object, got {_json_type(document)}",
        )
    if _nesting_exceeds(document, limits.max_nesting_depth):
        raise _Invalid(
            DeadLetterReason.TOO_DEEPLY_NESTED,
            f"JSON nesting is deeper than {limits.max_nesting_depth} levels",
        )
    event = _convert(document, ExceptionEvent, "")
    event_uuid = _parse_uuid(event.uuid)
    timestamp = _parse_timestamp(event.timestamp)
    for name in TEXT_PROPERTIES:
        value = event.properties.get(name)
        if value is not None and not isinstance(value, str):
            raise _Invalid(
                DeadLetterReason.SCHEMA_VIOLATION,
                f"Expected `str | null`, got `{_json_type(value)}` - at `properties.{name}`",
            )
    exceptions = _exception_list(event.properties.get(EXCEPTION_LIST_KEY), limits)
    return DecodedEvent(document, event, event_uuid, timestamp, exceptions)


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


def _nesting_exceeds(document: dict[str, Any] | list[Any], limit: int) -> bool:
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                pending.append((child, depth + 1))
    return False


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

    return _ERROR_PATH.sub(rewrite, message)


def _parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _Invalid(
            DeadLetterReason.INVALID_UUID, f"uuid {value[:100]!r} is not a UUID"
        ) from None


def _parse_timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(
            DeadLetterReason.INVALID_TIMESTAMP,
            f"timestamp {value[:100]!r} is not an ISO 8601 date-time",
        ) from None
    # A timestamp without an offset is taken as UTC, as the ingestion pipeline writes UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _exception_list(raw: Any, limits: DecodeLimits) -> list[ExceptionEntry]:
    if raw is None or raw == []:
        raise _Invalid(
            DeadLetterReason.EMPTY_EXCEPTION_LIST,
            f"properties.{EXCEPTION_LIST_KEY} is missing or empty",
        )
    if not isinstance(raw, list):
        raise _Invalid(
            DeadLetterReason.SCHEMA_VIOLATION,
            f"Expected `array`, got `{_json_type(raw)}` - at `properties.{EXCEPTION_LIST_KEY}`",
        )
    if len(raw) > limits.max_exceptions:
        raise _Invalid(
            DeadLetterReason.TOO_MANY_EXCEPTIONS,
            f"{len(raw)} exceptions; the limit is {limits.max_exceptions}",
        )
    # Counted on the raw lists so an oversized stack is refused before it is converted.
    for index, entry in enumerate(raw):
        frames = _raw_frames(entry)
        if len(frames) > limits.max_frames_per_exception:
            raise _Invalid(
                DeadLetterReason.TOO_MANY_FRAMES,
                f"exception {index} has {len(frames)} frames; "
                f"the limit is {limits.max_frames_per_exception}",
            )
    return _convert(raw, list[ExceptionEntry], f"properties.{EXCEPTION_LIST_KEY}")


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
