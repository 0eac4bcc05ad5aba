"""What the sinks send: forwarded events enriched and keyed by project, dead letters carrying the
original bytes; and delivery that resends only what the broker did not acknowledge."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from schemas.events import DeadLetter, DeadLetterReason, ExceptionEvent, ExceptionProperties
from tests.worker.events import encode, exception_event
from worker.decode import DecodeLimits, decode_batch
from worker.outcomes import Outcome
from worker.records import EventRecord, SourceMessage
from worker.retry import Backoff
from worker.sinks import (
    DEAD_LETTER_PAYLOAD_MAX_CHARS,
    KafkaSink,
    OutgoingMessage,
    OutputTopics,
    Queued,
    accepted_event,
    dead_letter_payload,
    output_messages,
)

TOPICS = OutputTopics(accepted="accepted", dead_letter="dlq")
QUICK = Backoff(first_delay_seconds=0.001, max_delay_seconds=0.001)
ISSUE_ID = uuid.UUID("0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d")


def forwarded_record(document: dict[str, Any], offset: int = 0) -> EventRecord:
    record = EventRecord(SourceMessage("in", 3, offset, b"7", encode(document)))
    record.document = document
    record.event = msgspec.convert(document, ExceptionEvent)
    record.exception_properties = msgspec.convert(document["properties"], ExceptionProperties)
    record.fingerprint = "fp-1"
    record.issue_id = ISSUE_ID
    record.finish(Outcome.FORWARDED)
    return record


def dead_record(payload: bytes, offset: int = 0) -> EventRecord:
    record = EventRecord(SourceMessage("in", 1, offset, None, payload))
    record.reject(DeadLetterReason.INVALID_JSON, "JSON is malformed")
    return record


def test_a_forwarded_event_is_the_input_as_sent_plus_its_issue_and_fingerprint() -> None:
    document = {**exception_event(7, **{"$exception_fingerprint": "manual"}), "extra": {"a": 1}}

    forwarded = msgspec.json.decode(accepted_event(forwarded_record(document)))

    assert forwarded == {
        **document,
        "properties": {
            **document["properties"],
            "$exception_issue_id": str(ISSUE_ID),
            "$exception_fingerprint": "fp-1",
        },
    }


UUID_TEXT = str(ISSUE_ID)
# Input as sent -> the accepted message, byte for byte: the whole event written again by msgspec
# (whitespace, escapes, numbers and duplicate keys normalised), the issue and fingerprint where a
# property of that name already stood, else last in properties. A forwarder that passed the input
# bytes on as they are would send other bytes for such events: this pins the contract it must keep.
CANONICAL_FORWARDS = {
    "spacing, escapes, numbers, duplicates, both properties sent, properties not last": (
        '{ "uuid" : "%s",\n "distinct_id": "a", "project_id": 7,\n "properties": '
        '{"$exception_fingerprint": "client", "$exception_list": [{"type": "E\\u0301\\/x\\t", '
        '"stacktrace": {"frames": [{"function": "f", "context": {"n": 1e9, "m": -0, "f": 1.50, '
        '"big": 100000000000000000000, "nested": {"deep": [{"a": null}]}}}]}}], '
        '"$exception_issue_id": "old", "tier": 1, "tier": 2},\n '
        '"timestamp": "2026-11-26T06:00:00Z", "distinct_id": "b"}',
        '{"uuid":"%s","distinct_id":"b","project_id":7,"properties":'
        '{"$exception_fingerprint":"fp-1","$exception_list":[{"type":"E\u0301/x\\t",'
        '"stacktrace":{"frames":[{"function":"f","context":{"n":1000000000.0,"m":0,"f":1.5,'
        '"big":100000000000000000000,"nested":{"deep":[{"a":null}]}}}]}}],'
        '"$exception_issue_id":"%s","tier":2},"timestamp":"2026-11-26T06:00:00Z"}',
    ),
    "compact, the issue id sent": (
        '{"uuid":"%s","project_id":7,"timestamp":"2026-11-26T06:00:00Z",'
        '"properties":{"$exception_list":[{"type":"E"}],"$exception_issue_id":"old"}}',
        '{"uuid":"%s","project_id":7,"timestamp":"2026-11-26T06:00:00Z",'
        '"properties":{"$exception_list":[{"type":"E"}],"$exception_issue_id":"%s",'
        '"$exception_fingerprint":"fp-1"}}',
    ),
    "properties sent twice, unicode escaped and raw": (
        '{"uuid":"%s","project_id":7,"timestamp":"2026-11-26T06:00:00Z",'
        '"properties":{"$exception_list":[{"type":"E"}]},'
        '"properties":{"$exception_list":[{"type":"F"}],"caf\\u00e9":"é"}}',
        '{"uuid":"%s","project_id":7,"timestamp":"2026-11-26T06:00:00Z",'
        '"properties":{"$exception_list":[{"type":"F"}],"café":"é",'
        '"$exception_issue_id":"%s","$exception_fingerprint":"fp-1"}}',
    ),
}


@pytest.mark.parametrize("case", sorted(CANONICAL_FORWARDS))
def test_a_forwarded_event_is_written_again_whole_with_the_added_properties_winning(
    case: str,
) -> None:
    sent, accepted = CANONICAL_FORWARDS[case]
    record = EventRecord(SourceMessage("in", 0, 0, b"7", (sent % UUID_TEXT).encode()))
    decode_batch([record], DecodeLimits(1_000_000, 50, 500))
    record.fingerprint = "fp-1"
    record.issue_id = ISSUE_ID
    record.finish(Outcome.FORWARDED)

    assert accepted_event(record) == (accepted % (UUID_TEXT, UUID_TEXT)).encode()


def test_output_messages_route_forwarded_and_dead_lettered_events_and_nothing_else() -> None:
    forwarded = forwarded_record(exception_event(7))
    dead = dead_record(b"{oops", offset=5)
    suppressed = EventRecord(SourceMessage("in", 0, 9, None, b"{}"))
    suppressed.finish(Outcome.SUPPRESSED)

    messages = output_messages([forwarded, suppressed, dead], TOPICS)

    assert [(m.topic, m.key) for m in messages] == [("accepted", b"7"), ("dlq", None)]
    assert msgspec.json.decode(messages[1].value, type=DeadLetter) == DeadLetter(
        reason=DeadLetterReason.INVALID_JSON,
        error="JSON is malformed",
        topic="in",
        partition=1,
        offset=5,
        payload="{oops",
        payload_encoding="utf-8",
        payload_truncated=False,
    )


def test_a_utf8_payload_is_carried_as_text() -> None:
    assert dead_letter_payload('{"café": 1}'.encode()) == ('{"café": 1}', "utf-8", False)


def test_a_payload_that_is_not_utf8_is_carried_as_base64() -> None:
    original = b'{"a": "\xff\xfe"}'

    assert dead_letter_payload(original) == (base64.b64encode(original).decode(), "base64", False)


def test_text_that_would_grow_too_large_once_escaped_is_carried_whole_as_base64() -> None:
    original = b"\x01" * 200_000  # each control byte becomes six characters as JSON text

    payload, encoding, truncated = dead_letter_payload(original)

    assert (encoding, truncated) == ("base64", False)
    assert base64.b64decode(payload) == original


def test_only_a_payload_too_large_for_any_encoding_is_cut_to_its_first_bytes() -> None:
    original = b"x" * 1_000_100

    payload, encoding, truncated = dead_letter_payload(original)

    assert (encoding, truncated) == ("base64", True)
    assert len(payload) <= DEAD_LETTER_PAYLOAD_MAX_CHARS
    assert base64.b64decode(payload) == original[: DEAD_LETTER_PAYLOAD_MAX_CHARS // 4 * 3]


class FlakyBroker:
    """Acknowledges messages, except those it is told to fail once (on queueing or on ack)."""

    def __init__(self, *, fail_ack: set[bytes] = frozenset(), fail_queue: set[bytes] = frozenset()):
        self.fail_ack = set(fail_ack)
        self.fail_queue = set(fail_queue)
        self.attempts: list[bytes] = []
        self.acknowledged: list[bytes] = []

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[Queued]:
        """One group per message; a message it fails to queue ends the queueing there, and it
        and the rest come back under a failed acknowledgement."""
        queued: list[Queued] = []
        for index, message in enumerate(messages):
            self.attempts.append(message.value)
            ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            if message.value in self.fail_queue:
                self.fail_queue.discard(message.value)
                ack.set_exception(KafkaConnectionError("broker unreachable"))
                queued.append((messages[index:], ack))
                return queued
            if message.value in self.fail_ack:
                self.fail_ack.discard(message.value)
                ack.set_exception(KafkaConnectionError("leader moved"))
            else:
                self.acknowledged.append(message.value)
                ack.set_result(None)
            queued.append(([message], ack))
        return queued


def messages(*values: bytes) -> list[OutgoingMessage]:
    return [OutgoingMessage("t", None, value) for value in values]


async def test_only_unacknowledged_messages_are_sent_again() -> None:
    broker = FlakyBroker(fail_ack={b"b"})

    await KafkaSink(broker.send, backoff=QUICK).deliver(messages(b"a", b"b", b"c"))

    assert broker.attempts == [b"a", b"b", b"c", b"b"]
    assert sorted(broker.acknowledged) == [b"a", b"b", b"c"]


async def test_messages_not_queued_because_of_an_outage_are_sent_on_the_next_attempt() -> None:
    broker = FlakyBroker(fail_queue={b"b"})

    await KafkaSink(broker.send, backoff=QUICK).deliver(messages(b"a", b"b", b"c"))

    assert broker.attempts == [b"a", b"b", b"b", b"c"]
    assert broker.acknowledged == [b"a", b"b", b"c"]


async def test_a_message_the_broker_can_never_take_is_raised() -> None:
    async def refuse(messages: Sequence[OutgoingMessage]) -> list[Queued]:
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ack.set_exception(MessageSizeTooLargeError())
        return [(messages, ack)]

    with pytest.raises(MessageSizeTooLargeError):
        await KafkaSink(refuse, backoff=QUICK).deliver(messages(b"huge"))
