"""Typed models of every topic's messages (see ``schemas/json/`` for the published JSON Schemas).

msgspec decodes and validates a message in one pass, which matters on the worker's hot path. The
input event keeps ``properties`` as a plain dict so that forwarding preserves every property the
client sent; the exception list inside it is validated separately into ``ExceptionEntry`` models.
"""

from __future__ import annotations

from typing import Any

import msgspec


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


class DeadLetter(msgspec.Struct):
    """A message of ``exception_events_dlq``: why an input message could not be processed."""

    reason: str
    error: str
    topic: str
    partition: int
    offset: int
    payload: str
    payload_encoding: str = "utf-8"


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
