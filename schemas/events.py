"""Typed models of every topic's messages (see ``schemas/json/`` for the published JSON Schemas).

msgspec decodes and validates a message in one pass, which matters on the worker's hot path. The
input event keeps ``properties`` as a plain dict so that forwarding preserves every property the
client sent; the properties spikewatch reads are validated separately by ``ExceptionProperties``.
A test checks that these models and the JSON Schemas accept and reject the same messages.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

# Canonical hyphenated form only (what the JSON Schema ``uuid`` format means).
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# An ISO 8601 date-time with seconds; without an offset it means UTC.
TIMESTAMP_PATTERN = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?"
    "([Zz]|[+-][0-9]{2}:?[0-9]{2})?$"
)


class Frame(msgspec.Struct, omit_defaults=True):
    raw_id: str | None = None
    platform: str | None = None
    filename: str | None = None
    abs_path: str | None = None
    module: str | None = None
    function: str | None = None
    lineno: int | None = None
    colno: int | None = None
    in_app: bool = False
    resolved: bool = True
    symbol_set_ref: str | None = None
    context: dict[str, Any] | None = None


class StackTrace(msgspec.Struct, omit_defaults=True):
    type: str = "resolved"
    frames: list[Frame] = msgspec.field(default_factory=list)


class Mechanism(msgspec.Struct, omit_defaults=True):
    handled: bool | None = None
    type: str | None = None
    synthetic: bool | None = None


class ExceptionEntry(msgspec.Struct, omit_defaults=True):
    type: str
    value: str | None = None
    mechanism: Mechanism | None = None
    module: str | None = None
    stacktrace: StackTrace | None = None


class ExceptionEvent(msgspec.Struct):
    """An input message of ``exception_events``; ``properties`` stays a dict (see module doc)."""

    uuid: str
    project_id: int
    timestamp: str
    properties: dict[str, Any]
    event: str = "$exception"
    distinct_id: str | None = None


class ExceptionProperties(msgspec.Struct):
    """The properties of an input event that spikewatch reads; any others pass through untouched."""

    exception_list: list[ExceptionEntry] = msgspec.field(name="$exception_list")
    exception_fingerprint: str | None = msgspec.field(default=None, name="$exception_fingerprint")
    issue_name: str | None = msgspec.field(default=None, name="$issue_name")
    issue_description: str | None = msgspec.field(default=None, name="$issue_description")
    release: str | None = msgspec.field(default=None, name="$release")


class AcceptedProperties(msgspec.Struct):
    """The properties of a forwarded event: the input's, plus the issue the worker grouped it in."""

    exception_list: Annotated[list[ExceptionEntry], msgspec.Meta(min_length=1)] = msgspec.field(
        name="$exception_list"
    )
    exception_issue_id: Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)] = msgspec.field(
        name="$exception_issue_id"
    )
    exception_fingerprint: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = (
        msgspec.field(name="$exception_fingerprint")
    )
    issue_name: str | None = msgspec.field(default=None, name="$issue_name")
    issue_description: str | None = msgspec.field(default=None, name="$issue_description")
    release: str | None = msgspec.field(default=None, name="$release")


class AcceptedEvent(msgspec.Struct):
    """A message of ``exception_events_accepted``: the input event as sent, enriched."""

    uuid: Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)]
    project_id: int
    timestamp: Annotated[str, msgspec.Meta(pattern=TIMESTAMP_PATTERN)]
    properties: AcceptedProperties
    event: str = "$exception"
    distinct_id: str | None = None


class DeadLetterReason(StrEnum):
    """Why a message went to the DLQ: one machine-readable value per kind of failure."""

    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_JSON = "invalid_json"  # also: not UTF-8
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    NOT_AN_OBJECT = "not_an_object"
    SCHEMA_VIOLATION = "schema_violation"
    INVALID_UUID = "invalid_uuid"
    INVALID_TIMESTAMP = "invalid_timestamp"
    EMPTY_EXCEPTION_LIST = "empty_exception_list"
    TOO_MANY_EXCEPTIONS = "too_many_exceptions"
    TOO_MANY_FRAMES = "too_many_frames"
    UNKNOWN_PROJECT = "unknown_project"
    # Processing the event raised something other than an outage (a bug, or a constraint the event
    # violates): it is set aside so that the rest of its batch still goes through.
    PROCESSING_ERROR = "processing_error"


class DeadLetter(msgspec.Struct):
    """A message of ``exception_events_dlq``: why an input message could not be processed.

    ``payload`` is the original message: its text when it is UTF-8, else its base64; only a message
    too large to carry whole is cut (``payload_truncated``).
    """

    reason: DeadLetterReason
    error: str
    topic: str
    partition: Annotated[int, msgspec.Meta(ge=0)]
    offset: Annotated[int, msgspec.Meta(ge=0)]
    payload: str
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload_truncated: bool = False


class SpikeIssue(msgspec.Struct):
    id: str
    name: str | None
    description: str | None


class SpikeEventMessage(msgspec.Struct):
    """A message of ``error_tracking_spike_events``, keyed by issue id."""

    id: str
    project_id: int
    issue: SpikeIssue
    detected_at: str
    computed_baseline: float
    current_bucket_value: int
    bucket_start: str
    threshold: int
    multiplier: int
