"""Hostile input messages, each with the fate the worker must give it: what a broken SDK, a bug
upstream or an attacker with write access to the topic could put there.

Pure builders, no I/O. Sizes are chosen against the worker's limits (1 MB per message, nesting 64,
500 frames per exception) and the broker's (10 MB messages need a broker that accepts them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from schemas.events import DeadLetterReason
from tests.worker.events import encode, exception_event, iso

MEGABYTE = 1_000_000
FORWARDED = "forwarded"

# Typed fields of an input event (schemas.events), each present in ``full_event``: every one of
# them gets a value of the wrong type. Free-form dicts (other properties, frame context
# contents) accept anything and are not walked into.
_FREE_FORM = {"context"}


@dataclass(frozen=True, slots=True)
class Hostile:
    name: str
    value: bytes | None
    # A DeadLetterReason value, or FORWARDED.
    fate: str
    # Dead-lettered by the sink, once the pipeline had counted it towards spikes.
    counted: bool = False


def _event(project_id: int, **fields: Any) -> dict[str, Any]:
    """A valid event of now: a counted one stays in the spike buckets for the whole history."""
    return exception_event(project_id, timestamp=iso(time.time()), **fields)


def full_event(project_id: int) -> dict[str, Any]:
    """A valid event that sends every field the worker reads."""
    document = _event(
        project_id,
        release="release-1",
        symbol_set_ref="bundle-1",
        **{
            "$exception_fingerprint": "manual",
            "$issue_name": "name",
            "$issue_description": "description",
        },
    )
    [entry] = document["properties"]["$exception_list"]
    entry["module"] = "app.views"
    entry["mechanism"]["synthetic"] = False
    [frame] = entry["stacktrace"]["frames"]
    frame.update(raw_id="frame-1", abs_path="/srv/app/views.py", module="app.views", context={})
    return document


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int):
        return "12"
    if isinstance(value, str):
        return 12345
    if isinstance(value, dict):
        return ["not", "an", "object"]
    return {"not": "an array"}


def field_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in a JSON document, free-form dicts not walked into."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in items:
        yield (*path, key)
        if isinstance(child, dict | list) and key not in _FREE_FORM:
            yield from field_paths(child, (*path, key))


def wrong_types(project_id: int) -> list[Hostile]:
    """One message per typed field of the event, that field holding a value of another type."""
    template = full_event(project_id)
    hostile = []
    for path in field_paths(template):
        if path[:1] == ("properties",) and len(path) == 2 and not path[1].startswith("$"):
            continue
        document = full_event(project_id)
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = _wrong_type(parent[path[-1]])
        name = "wrong type at " + ".".join(map(str, path))
        hostile.append(Hostile(name, encode(document), DeadLetterReason.SCHEMA_VIOLATION.value))
    return hostile


def _with_properties(project_id: int, **properties: Any) -> bytes:
    document = _event(project_id)
    document["properties"].update(properties)
    return encode(document)


def _with_frame(project_id: int, **frame: Any) -> bytes:
    document = _event(project_id)
    document["properties"]["$exception_list"][0]["stacktrace"]["frames"][0].update(frame)
    return encode(document)


def hostile_messages(project_id: int, unknown_project_id: int) -> list[Hostile]:
    """Every kind of hostile message once (``wrong_types`` adds one per field), with its fate on
    PostgreSQL: it cannot store a NUL character or index a 300 kB key, so those two events are
    dead-lettered as processing errors (SQLite stores both)."""
    random_text = os.urandom(150_000).hex()
    return [
        Hostile("invalid UTF-8", b'{"uuid": "\xff\xfe\xfd"}', DeadLetterReason.INVALID_JSON.value),
        Hostile(
            "lone UTF-16 surrogate escape",
            b'{"uuid": "\\ud800"}',
            DeadLetterReason.INVALID_JSON.value,
        ),
        Hostile("empty message", b"", DeadLetterReason.INVALID_JSON.value),
        Hostile("null message (tombstone)", None, DeadLetterReason.INVALID_JSON.value),
        Hostile(
            "nesting bomb, 100,000 arrays deep",
            b"[" * 100_000 + b"]" * 100_000,
            DeadLetterReason.TOO_DEEPLY_NESTED.value,
        ),
        Hostile(
            "nesting bomb inside a valid event",
            _with_properties(
                project_id, bomb=msgspec.Raw(b'{"d":' * 10_000 + b"0" + b"}" * 10_000)
            ),
            DeadLetterReason.TOO_DEEPLY_NESTED.value,
        ),
        Hostile(
            "10 MB event",
            _with_properties(project_id, padding="x" * (10 * MEGABYTE)),
            DeadLetterReason.MESSAGE_TOO_LARGE.value,
        ),
        Hostile(
            "10 MB of random bytes",
            os.urandom(10 * MEGABYTE),
            DeadLetterReason.MESSAGE_TOO_LARGE.value,
        ),
        Hostile(
            "100,000 frames",
            _with_properties(
                project_id,
                **{"$exception_list": [{"type": "E", "stacktrace": {"frames": [{}] * 100_000}}]},
            ),
            DeadLetterReason.TOO_MANY_FRAMES.value,
        ),
        Hostile(
            "70,000 exceptions",
            _with_properties(project_id, **{"$exception_list": [{"type": "E"}] * 70_000}),
            DeadLetterReason.TOO_MANY_EXCEPTIONS.value,
        ),
        Hostile(
            "900 kB exception message",
            encode(_event(project_id, error_type="Huge", value="v" * 900_000)),
            FORWARDED,
        ),
        Hostile(
            "900 kB manual fingerprint",
            _with_properties(project_id, **{"$exception_fingerprint": "f" * 900_000}),
            FORWARDED,
        ),
        Hostile(
            "300,000 empty arrays in a property",
            _with_properties(project_id, wide=[[]] * 300_000),
            FORWARDED,
        ),
        Hostile(
            "300 kB random frame raw_id",
            _with_frame(project_id, raw_id=random_text),
            DeadLetterReason.PROCESSING_ERROR.value,
        ),
        Hostile(
            "NUL in an exception type",
            encode(_event(project_id, error_type="Nul\u0000Error")),
            DeadLetterReason.PROCESSING_ERROR.value,
        ),
        Hostile(
            "numbers that grow when written out again",
            _with_properties(project_id, numbers=msgspec.Raw(b"[" + b"1e9," * 240_000 + b"1]")),
            # 960 kB in, 3 MB once enriched and written out: more than the producer may send.
            DeadLetterReason.MESSAGE_TOO_LARGE.value,
            counted=True,
        ),
        Hostile(
            "project id beyond 32 bits",
            encode(_event(2**40)),
            DeadLetterReason.UNKNOWN_PROJECT.value,
        ),
        Hostile(
            "negative project id",
            encode(_event(-1)),
            DeadLetterReason.UNKNOWN_PROJECT.value,
        ),
        Hostile(
            "unknown project",
            encode(_event(unknown_project_id)),
            DeadLetterReason.UNKNOWN_PROJECT.value,
        ),
        *wrong_types(project_id),
    ]
