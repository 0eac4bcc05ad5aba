"""The published JSON Schemas of every topic (``schemas/json``) and the msgspec models the worker
uses accept and reject the same messages; what the worker really emits validates."""

from __future__ import annotations

import copy
import json
import pathlib
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from schemas.events import (
    TIMESTAMP_PATTERN,
    UUID_PATTERN,
    AcceptedEvent,
    DeadLetter,
    DeadLetterReason,
    ExceptionEvent,
    ExceptionProperties,
    SpikeEventMessage,
)
from schemas.settings import Settings
from worker.decode import DecodedEvent, DecodeLimits, decode_event
from worker.outcomes import Outcome
from worker.records import EventRecord, SourceMessage
from worker.sinks import accepted_event, dead_letter

SCHEMA_DIR = pathlib.Path(__file__).resolve().parents[1] / "schemas" / "json"
SCHEMAS = {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMA_DIR.glob("*.json"))}
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)
DEFAULT_LIMITS = DecodeLimits.from_settings(Settings())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], registry=REGISTRY)


def input_event() -> dict[str, Any]:
    return {
        "uuid": "0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d",
        "project_id": 7,
        "timestamp": "2026-11-26T06:00:00Z",
        "event": "$exception",
        "distinct_id": "user-1",
        "properties": {
            "$exception_list": [
                {
                    "type": "TypeError",
                    "value": "x is undefined",
                    "mechanism": {"handled": False, "type": "onerror", "synthetic": False},
                    "module": "app.views",
                    "stacktrace": {
                        "type": "resolved",
                        "frames": [
                            {
                                "raw_id": "r1",
                                "platform": "python",
                                "filename": "app/views.py",
                                "function": "index",
                                "lineno": 10,
                                "colno": 4,
                                "in_app": True,
                                "resolved": True,
                                "symbol_set_ref": "s1",
                                "context": {},
                            }
                        ],
                    },
                }
            ],
            "$exception_fingerprint": None,
            "$release": "rel-1",
            "$browser": "Firefox",
        },
    }


def changed(document: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    copied = copy.deepcopy(document)
    change(copied)
    return copied


def first_exception(document: dict[str, Any]) -> dict[str, Any]:
    return document["properties"]["$exception_list"][0]


def first_frame(document: dict[str, Any]) -> dict[str, Any]:
    return first_exception(document)["stacktrace"]["frames"][0]


INPUT_SAMPLES: dict[str, Any] = {
    "full": input_event(),
    "minimal": {
        "uuid": "0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d",
        "project_id": 7,
        "timestamp": "2026-11-26 06:00:00",
        "properties": {"$exception_list": [{"type": "Error"}]},
    },
    "offset-timestamp": changed(
        input_event(), lambda d: d.update(timestamp="2026-11-26T08:00:00.5+02:00")
    ),
    "null-mechanism-and-stack": changed(
        input_event(), lambda d: first_exception(d).update(mechanism=None, stacktrace=None)
    ),
    "50-exceptions": changed(
        input_event(), lambda d: d["properties"].update({"$exception_list": [{"type": "E"}] * 50})
    ),
    "not-an-object": ["an", "array"],
    "missing-uuid": changed(input_event(), lambda d: d.pop("uuid")),
    "missing-project": changed(input_event(), lambda d: d.pop("project_id")),
    "missing-timestamp": changed(input_event(), lambda d: d.pop("timestamp")),
    "missing-properties": changed(input_event(), lambda d: d.pop("properties")),
    "project-as-text": changed(input_event(), lambda d: d.update(project_id="7")),
    "project-as-bool": changed(input_event(), lambda d: d.update(project_id=True)),
    "uuid-unhyphenated": changed(input_event(), lambda d: d.update(uuid=uuid.uuid4().hex)),
    "timestamp-as-words": changed(input_event(), lambda d: d.update(timestamp="last tuesday")),
    "timestamp-date-only": changed(input_event(), lambda d: d.update(timestamp="2026-11-26")),
    "distinct-id-as-number": changed(input_event(), lambda d: d.update(distinct_id=5)),
    "properties-as-array": changed(input_event(), lambda d: d.update(properties=[])),
    "exception-list-missing": changed(
        input_event(), lambda d: d["properties"].pop("$exception_list")
    ),
    "exception-list-empty": changed(
        input_event(), lambda d: d["properties"].update({"$exception_list": []})
    ),
    "51-exceptions": changed(
        input_event(), lambda d: d["properties"].update({"$exception_list": [{"type": "E"}] * 51})
    ),
    "501-frames": changed(
        input_event(),
        lambda d: first_exception(d)["stacktrace"].update(frames=[{"function": "f"}] * 501),
    ),
    "exception-without-type": changed(input_event(), lambda d: first_exception(d).pop("type")),
    "handled-as-text": changed(
        input_event(), lambda d: first_exception(d)["mechanism"].update(handled="no")
    ),
    "frame-line-as-text": changed(input_event(), lambda d: first_frame(d).update(lineno="10")),
    "frame-in-app-null": changed(input_event(), lambda d: first_frame(d).update(in_app=None)),
    "frame-context-as-text": changed(input_event(), lambda d: first_frame(d).update(context="x")),
    "release-as-number": changed(input_event(), lambda d: d["properties"].update({"$release": 3})),
    "issue-name-as-list": changed(
        input_event(), lambda d: d["properties"].update({"$issue_name": ["a"]})
    ),
}
VALID_INPUTS = {"full", "minimal", "offset-timestamp", "null-mechanism-and-stack", "50-exceptions"}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_published_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name])
    assert SCHEMAS[name]["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_there_is_a_schema_for_each_of_the_four_topics() -> None:
    assert sorted(SCHEMAS) == ["accepted_event", "dead_letter", "exception_event", "spike_event"]


def test_schema_patterns_and_reasons_are_the_ones_the_models_use() -> None:
    properties = SCHEMAS["exception_event"]["properties"]
    assert properties["uuid"]["pattern"] == UUID_PATTERN
    assert properties["timestamp"]["pattern"] == TIMESTAMP_PATTERN
    assert SCHEMAS["dead_letter"]["properties"]["reason"]["enum"] == [
        reason.value for reason in DeadLetterReason
    ]


@pytest.mark.parametrize("name", sorted(INPUT_SAMPLES))
def test_input_events_are_accepted_by_the_schema_exactly_when_the_worker_decodes_them(
    name: str,
) -> None:
    sample = INPUT_SAMPLES[name]
    decoded = decode_event(msgspec.json.encode(sample), DEFAULT_LIMITS)

    assert validator("exception_event").is_valid(sample) is (name in VALID_INPUTS)
    assert isinstance(decoded, DecodedEvent) is (name in VALID_INPUTS)


def accepted_sample(**property_changes: Any) -> dict[str, Any]:
    document = input_event()
    document["properties"].update(
        {"$exception_issue_id": str(uuid.uuid4()), "$exception_fingerprint": "a" * 64}
    )
    document["properties"].update(property_changes)
    return document


ACCEPTED_SAMPLES: dict[str, tuple[Any, bool]] = {
    "enriched": (accepted_sample(), True),
    "short-fingerprint": (accepted_sample(**{"$exception_fingerprint": "manual"}), True),
    "input-only": (input_event(), False),
    "issue-id-not-uuid": (accepted_sample(**{"$exception_issue_id": "issue-1"}), False),
    "fingerprint-too-long": (accepted_sample(**{"$exception_fingerprint": "a" * 65}), False),
    "fingerprint-empty": (accepted_sample(**{"$exception_fingerprint": ""}), False),
    "fingerprint-null": (accepted_sample(**{"$exception_fingerprint": None}), False),
    "exception-list-empty": (accepted_sample(**{"$exception_list": []}), False),
    "uuid-not-uuid": ({**accepted_sample(), "uuid": "nope"}, False),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_SAMPLES))
def test_accepted_events_are_judged_alike_by_the_schema_and_the_model(name: str) -> None:
    sample, valid = ACCEPTED_SAMPLES[name]

    assert validator("accepted_event").is_valid(sample) is valid
    assert model_accepts(AcceptedEvent, sample) is valid


def dead_letter_sample(**changes: Any) -> dict[str, Any]:
    return {
        "reason": "invalid_json",
        "error": "JSON is malformed",
        "topic": "exception_events",
        "partition": 0,
        "offset": 12,
        "payload": "{oops",
        "payload_encoding": "utf-8",
        "payload_truncated": False,
        **changes,
    }


DEAD_LETTER_SAMPLES: dict[str, tuple[Any, bool]] = {
    "text": (dead_letter_sample(), True),
    "base64-truncated": (
        dead_letter_sample(payload="eHh4", payload_encoding="base64", payload_truncated=True),
        True,
    ),
    "defaults-left-out": (
        {k: v for k, v in dead_letter_sample().items() if not k.startswith("payload_")},
        True,
    ),
    "unknown-reason": (dead_letter_sample(reason="it broke"), False),
    "negative-offset": (dead_letter_sample(offset=-1), False),
    "partition-as-text": (dead_letter_sample(partition="0"), False),
    "missing-payload": ({k: v for k, v in dead_letter_sample().items() if k != "payload"}, False),
    "other-encoding": (dead_letter_sample(payload_encoding="latin-1"), False),
    "truncated-as-text": (dead_letter_sample(payload_truncated="yes"), False),
}


@pytest.mark.parametrize("name", sorted(DEAD_LETTER_SAMPLES))
def test_dead_letters_are_judged_alike_by_the_schema_and_the_model(name: str) -> None:
    sample, valid = DEAD_LETTER_SAMPLES[name]

    assert validator("dead_letter").is_valid(sample) is valid
    assert model_accepts(DeadLetter, sample) is valid


def spike_sample(**changes: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "project_id": 7,
        "issue": {"id": str(uuid.uuid4()), "name": "TypeError", "description": None},
        "detected_at": "2026-11-26T06:03:00Z",
        "computed_baseline": 10.5,
        "current_bucket_value": 600,
        "bucket_start": "2026-11-26T06:00:00Z",
        "threshold": 500,
        "multiplier": 10,
        **changes,
    }


SPIKE_SAMPLES: dict[str, tuple[Any, bool]] = {
    "spike": (spike_sample(), True),
    "integral-baseline": (spike_sample(computed_baseline=10), True),
    "missing-issue": ({k: v for k, v in spike_sample().items() if k != "issue"}, False),
    "issue-without-name": (spike_sample(issue={"id": "i", "description": None}), False),
    "fractional-bucket-value": (spike_sample(current_bucket_value=1.5), False),
    "threshold-as-text": (spike_sample(threshold="500"), False),
    "baseline-as-text": (spike_sample(computed_baseline="10"), False),
}


@pytest.mark.parametrize("name", sorted(SPIKE_SAMPLES))
def test_spike_events_are_judged_alike_by_the_schema_and_the_model(name: str) -> None:
    sample, valid = SPIKE_SAMPLES[name]

    assert validator("spike_event").is_valid(sample) is valid
    assert model_accepts(SpikeEventMessage, sample) is valid


def model_accepts(model: type, sample: Any) -> bool:
    try:
        msgspec.json.decode(msgspec.json.encode(sample), type=model)
    except msgspec.ValidationError:
        return False
    return True


def test_what_the_worker_forwards_validates_against_the_accepted_schema() -> None:
    document = input_event()
    record = EventRecord(
        SourceMessage("exception_events", 0, 0, b"7", msgspec.json.encode(document))
    )
    record.document = document
    record.event = msgspec.convert(document, ExceptionEvent)
    record.exception_properties = msgspec.convert(document["properties"], ExceptionProperties)
    record.fingerprint = "f" * 64
    record.issue_id = uuid.uuid4()
    record.finish(Outcome.FORWARDED)

    validator("accepted_event").validate(msgspec.json.decode(accepted_event(record)))


@pytest.mark.parametrize("payload", [b"{oops", b"\xff\xfe binary", b"x" * 1_000_100])
def test_what_the_worker_dead_letters_validates_against_the_dead_letter_schema(
    payload: bytes,
) -> None:
    record = EventRecord(SourceMessage("exception_events", 2, 41, None, payload))
    record.reject(DeadLetterReason.INVALID_JSON, "JSON is malformed")

    validator("dead_letter").validate(msgspec.json.decode(msgspec.json.encode(dead_letter(record))))
