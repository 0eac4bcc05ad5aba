"""Turn finished records into output messages and deliver them to Kafka durably.

Forwarded events go to the accepted topic, dead-lettered ones to the DLQ; other outcomes produce
nothing. ``deliver`` returns only once the broker acknowledged every message: the batch's offsets
must not be committed before that. Delivery is at-least-once (downstream dedupes on ``uuid``).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from schemas.events import DeadLetter, DeadLetterReason
from worker.outcomes import Outcome
from worker.records import EventRecord
from worker.retry import Backoff, retry_infrastructure

ISSUE_ID_PROPERTY = "$exception_issue_id"
FINGERPRINT_PROPERTY = "$exception_fingerprint"
# A DLQ record must fit the broker's default message limit (~1 MiB) whatever the poison looked like;
# text can grow up to 6x when JSON-escaped, so the limit applies to the encoded payload.
DEAD_LETTER_PAYLOAD_MAX_CHARS = 900_000
# The producer refuses a message over its max request size (1 MiB, worker/app.py), and a forwarded
# event can outgrow its input (1e9 is written back as 1000000000.0): one that would not fit is
# dead-lettered rather than failing its batch on every redelivery. The margin is Kafka's framing.
ACCEPTED_EVENT_MAX_BYTES = 1_048_576 - 4_096


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class OutputTopics:
    accepted: str
    dead_letter: str


# Messages queued on the producer together, and the broker's acknowledgement of them to await.
Queued = tuple[Sequence[OutgoingMessage], Awaitable[Any]]
# Queues messages on the producer; every message comes back in one of the groups, those it could
# not queue under an acknowledgement that fails (worker/producer.py).
SendFunction = Callable[[Sequence[OutgoingMessage]], Awaitable[list[Queued]]]


def output_messages(records: Sequence[EventRecord], topics: OutputTopics) -> list[OutgoingMessage]:
    messages = []
    for record in records:
        if record.outcome is Outcome.FORWARDED:
            value = accepted_event(record)
            if len(value) <= ACCEPTED_EVENT_MAX_BYTES:
                key = str(record.project_id).encode()
                messages.append(OutgoingMessage(topics.accepted, key, value))
                continue
            record.unforward(
                DeadLetterReason.MESSAGE_TOO_LARGE,
                f"the accepted event would be {len(value)} bytes; "
                f"the limit is {ACCEPTED_EVENT_MAX_BYTES}",
            )
        if record.outcome is Outcome.DEAD_LETTERED:
            value = msgspec.json.encode(dead_letter(record))
            messages.append(OutgoingMessage(topics.dead_letter, None, value))
    return messages


def accepted_event(record: EventRecord) -> bytes:
    """The input event exactly as sent, with its issue id and fingerprint added to properties."""
    if record.document is None or record.issue_id is None or record.fingerprint is None:
        raise ValueError("only a decoded event with an issue can be forwarded")
    properties = {
        **record.properties,
        ISSUE_ID_PROPERTY: str(record.issue_id),
        FINGERPRINT_PROPERTY: record.fingerprint,
    }
    return msgspec.json.encode({**record.document, "properties": properties})


def dead_letter(record: EventRecord) -> DeadLetter:
    if record.dead_letter is None:
        raise ValueError("the record was not dead-lettered")
    payload, encoding, truncated = dead_letter_payload(record.source.value)
    return DeadLetter(
        reason=record.dead_letter.reason,
        error=record.dead_letter.error,
        topic=record.source.topic,
        partition=record.source.partition,
        offset=record.source.offset,
        payload=payload,
        payload_encoding=encoding,
        payload_truncated=truncated,
    )


def dead_letter_payload(original: bytes) -> tuple[str, str, bool]:
    """(payload, encoding, truncated): the original as text when it is UTF-8 and fits, else base64
    of all of it when that fits, else base64 of its first bytes (only ever for oversized input)."""
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if len(msgspec.json.encode(text)) <= DEAD_LETTER_PAYLOAD_MAX_CHARS:
            return text, "utf-8", False
    max_bytes = DEAD_LETTER_PAYLOAD_MAX_CHARS // 4 * 3
    encoded = base64.b64encode(original[:max_bytes]).decode("ascii")
    return encoded, "base64", len(original) > max_bytes


class KafkaSink:
    def __init__(self, send: SendFunction, *, backoff: Backoff = Backoff()) -> None:
        self._send = send
        self._backoff = backoff

    async def deliver(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send every message and wait for the broker to acknowledge each; an outage is retried
        (only the messages not yet acknowledged are sent again)."""
        remaining = list(messages)

        async def attempt() -> None:
            nonlocal remaining
            remaining, error = await self._send_all(remaining)
            if error is not None:
                raise error

        if remaining:
            await retry_infrastructure(attempt, dependency="kafka", backoff=self._backoff)

    async def _send_all(
        self, messages: list[OutgoingMessage]
    ) -> tuple[list[OutgoingMessage], BaseException | None]:
        queued = await self._send(messages)
        results = await asyncio.gather(*(ack for _, ack in queued), return_exceptions=True)
        failed: list[OutgoingMessage] = []
        error: BaseException | None = None
        for (group, _), result in zip(queued, results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
                failed.extend(group)
        return failed, error
