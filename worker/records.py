"""The per-event record that travels through the pipeline, and the Kafka message it came from.

Stages fill a record in and may finish it with an outcome; later stages never touch a finished
record. A record carries its own failure (``dead_letter``): stages never raise for one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.events import DeadLetterReason, ExceptionEntry, ExceptionEvent, ExceptionProperties
from worker.outcomes import Outcome


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One consumed Kafka message: its coordinates and its raw bytes, exactly as received."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class DeadLetterNote:
    reason: DeadLetterReason
    error: str


@dataclass(slots=True)
class EventRecord:
    source: SourceMessage
    # Filled by decode: the JSON object as sent (forwarded as is, enriched) and its typed view.
    document: dict[str, Any] | None = None
    event: ExceptionEvent | None = None
    exception_properties: ExceptionProperties | None = None
    event_uuid: uuid.UUID | None = None
    timestamp: datetime | None = None
    # Filled by fingerprint and issues; the digest of the event's stack traces lets later stages
    # recognise a stack they have already handled.
    fingerprint: str | None = None
    stack_digest: bytes | None = None
    issue_id: uuid.UUID | None = None
    # Set once, by the stage that decides where the event ends.
    outcome: Outcome | None = None
    dead_letter: DeadLetterNote | None = None

    @property
    def in_flight(self) -> bool:
        return self.outcome is None

    @property
    def project_id(self) -> int:
        if self.event is None:
            raise ValueError("the record has not been decoded")
        return self.event.project_id

    @property
    def properties(self) -> dict[str, Any]:
        """Every property the client sent, as sent."""
        if self.event is None:
            raise ValueError("the record has not been decoded")
        return self.event.properties

    @property
    def known_properties(self) -> ExceptionProperties:
        """The properties spikewatch reads, validated and typed."""
        if self.exception_properties is None:
            raise ValueError("the record has not been decoded")
        return self.exception_properties

    @property
    def exceptions(self) -> list[ExceptionEntry]:
        return self.known_properties.exception_list

    def finish(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            raise ValueError(f"record already finished as {self.outcome}")
        self.outcome = outcome

    def reject(self, reason: DeadLetterReason, error: str) -> None:
        self.finish(Outcome.DEAD_LETTERED)
        self.dead_letter = DeadLetterNote(reason, error)

    def unforward(self, reason: DeadLetterReason, error: str) -> None:
        """Dead-letter a forwarded event whose accepted message cannot be written: the sink's
        last word, and the only change of an outcome once set."""
        if self.outcome is not Outcome.FORWARDED:
            raise ValueError(f"only a forwarded record can be unforwarded, not {self.outcome}")
        self.outcome = None
        self.reject(reason, error)


def in_flight(batch: Sequence[EventRecord]) -> list[EventRecord]:
    """The records no stage has finished yet, in batch order."""
    return [record for record in batch if record.in_flight]
