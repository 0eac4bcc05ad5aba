"""The closed vocabularies of where an input event ends: its outcome and, if dead-lettered, why.

Every consumed event ends in exactly one Outcome; metrics and sinks branch on these values only.
Values are wire strings (metric labels, DLQ ``reason``): never rename one without a migration note.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    FORWARDED = "forwarded"
    SUPPRESSED = "suppressed"
    RATE_LIMITED_ISSUE = "rate_limited_issue"
    RATE_LIMITED_PROJECT = "rate_limited_project"
    DEAD_LETTERED = "dead_lettered"


class DeadLetterReason(StrEnum):
    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_JSON = "invalid_json"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    NOT_AN_OBJECT = "not_an_object"
    SCHEMA_VIOLATION = "schema_violation"
    INVALID_UUID = "invalid_uuid"
    INVALID_TIMESTAMP = "invalid_timestamp"
    EMPTY_EXCEPTION_LIST = "empty_exception_list"
    TOO_MANY_EXCEPTIONS = "too_many_exceptions"
    TOO_MANY_FRAMES = "too_many_frames"
    UNKNOWN_PROJECT = "unknown_project"
    # An event whose processing raised something other than an infrastructure failure (a bug or a
    # constraint the event violates): isolated so the rest of its batch still goes through.
    PROCESSING_ERROR = "processing_error"

