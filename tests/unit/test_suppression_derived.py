"""The derived ``$exception_*`` keys, and rules that filter on them."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from schemas.events import ExceptionEntry, Frame, Mechanism, StackTrace
from schemas.property_filters import DERIVED_KEYS
from worker.suppression import RuleSpec, compile_rules, derive_properties

EXCEPTION_LIST = [
    {
        "type": "TypeError",
        "value": "x is undefined",
        "mechanism": {"handled": False, "type": "onerror"},
        "stacktrace": {
            "frames": [
                {"filename": "app/views.py", "function": "index", "in_app": True},
                {"abs_path": "/srv/lib/http.py", "function": "dispatch"},
                {"module": "vendor.router", "function": "index"},
                {"lineno": 3},
            ]
        },
    },
    {
        "type": "ValueError",
        "value": "bad value",
        "mechanism": {"handled": True},
        "stacktrace": {"frames": [{"filename": "app/views.py", "function": "load"}]},
    },
    {"type": "TypeError", "mechanism": {"type": "generic"}},
]


def decoded(exception_list: list[dict[str, Any]]) -> list[ExceptionEntry]:
    return msgspec.convert(exception_list, list[ExceptionEntry])


def test_derived_keys_are_computed_from_the_exception_list() -> None:
    derived = derive_properties(decoded(EXCEPTION_LIST), "fp-123", "release-abc")
    assert derived == {
        "$exception_types": ["TypeError", "ValueError"],
        "$exception_values": ["x is undefined", "bad value"],
        "$exception_sources": ["app/views.py", "/srv/lib/http.py", "vendor.router"],
        "$exception_functions": ["index", "dispatch", "load"],
        "$exception_handled": [False, True],
        "$exception_fingerprint": "fp-123",
        "$exception_releases": ["release-abc"],
    }
    assert derived.keys() == DERIVED_KEYS


def test_a_frame_source_prefers_filename_then_abs_path_then_module() -> None:
    frame = Frame(filename="a.py", abs_path="/abs/a.py", module="pkg.a")
    entries = [
        ExceptionEntry(type="E", stacktrace=StackTrace(frames=[frame])),
        ExceptionEntry(
            type="E", stacktrace=StackTrace(frames=[Frame(abs_path="/abs/b.py", module="pkg.b")])
        ),
    ]
    assert derive_properties(entries, "fp", None)["$exception_sources"] == ["a.py", "/abs/b.py"]


def test_absent_handled_flag_is_unknown_not_handled() -> None:
    entries = [
        ExceptionEntry(type="E", mechanism=Mechanism(type="generic")),
        ExceptionEntry(type="F"),
    ]
    assert derive_properties(entries, "fp", None)["$exception_handled"] == []


def test_no_release_means_no_releases() -> None:
    assert derive_properties([ExceptionEntry(type="E")], "fp", None)["$exception_releases"] == []


def rule(filters: dict[str, Any]) -> RuleSpec:
    return RuleSpec(uuid.uuid4(), filters, order_key=0, sampling_rate=1.0, disabled=False)


def where(key: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {
        "type": "AND",
        "values": [{"key": key, "type": "event", "operator": operator, "value": value}],
    }


EVENT_UUID = uuid.UUID(int=7)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (where("$exception_types", "exact", "ValueError"), True),
        (where("$exception_types", "is_not", "TypeError"), False),
        (where("$exception_values", "icontains", "UNDEFINED"), True),
        (where("$exception_sources", "regex", r"^vendor\."), True),
        (where("$exception_sources", "not_regex", r"^/srv/"), False),
        (where("$exception_functions", "exact", ["main", "dispatch"]), True),
        (where("$exception_handled", "exact", "false"), True),
        (where("$exception_handled", "is_not", True), False),
        (where("$exception_fingerprint", "exact", "fp-123"), True),
        (where("$exception_fingerprint", "exact", "fp-999"), False),
        (where("$exception_releases", "exact", "release-abc"), True),
        (where("$exception_releases", "is_set"), True),
        (where("$lib", "exact", "posthog-python"), True),
    ],
)
def test_rules_filter_on_derived_keys_laid_over_the_event_properties(
    filters: dict[str, Any], expected: bool
) -> None:
    event_properties = {"$lib": "posthog-python", "$exception_fingerprint": "client-sent"}
    derived = derive_properties(decoded(EXCEPTION_LIST), "fp-123", "release-abc")
    verdict = compile_rules([rule(filters)]).evaluate({**event_properties, **derived}, EVENT_UUID)
    assert verdict.suppressed is expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (where("$exception_handled", "exact", True), False),
        (where("$exception_handled", "exact", False), False),
        (where("$exception_handled", "is_not", False), True),
        (where("$exception_handled", "is_not_set"), True),
        (where("$exception_releases", "is_set"), False),
        (where("$exception_releases", "semver_gte", "0.0.0"), False),
    ],
)
def test_unknown_handled_and_missing_release_match_only_negations(
    filters: dict[str, Any], expected: bool
) -> None:
    derived = derive_properties([ExceptionEntry(type="E")], "fp", None)
    assert compile_rules([rule(filters)]).evaluate(derived, EVENT_UUID).suppressed is expected
