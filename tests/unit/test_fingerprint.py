"""Fingerprint rules of ARCHITECTURE.md: manual override, resolved vs unresolved frames, in-app
selection and the first-frame fallback, line/column when the function is unknown."""

from __future__ import annotations

import hashlib
import re

import pytest

from schemas.events import ExceptionEntry, Frame, StackTrace
from worker.fingerprint import (
    computed_fingerprint,
    fingerprint_event,
    frame_identity,
    grouping_frames,
    manual_fingerprint,
)

HEX_64 = re.compile(r"^[0-9a-f]{64}$")


def frame(function: str | None = "handler", **fields: object) -> Frame:
    defaults: dict[str, object] = {
        "filename": "app/views.py",
        "lineno": 10,
        "colno": 4,
        "in_app": True,
        "resolved": True,
    }
    return Frame(function=function, **{**defaults, **fields})


def exception(
    *frames: Frame, type: str = "TypeError", value: str = "x is undefined"
) -> ExceptionEntry:
    return ExceptionEntry(type=type, value=value, stacktrace=StackTrace(frames=list(frames)))


def test_manual_fingerprint_wins_over_the_exceptions() -> None:
    first = fingerprint_event([exception(frame("a"), type="TypeError")], "checkout-failure")
    second = fingerprint_event([exception(frame("b"), type="KeyError")], "checkout-failure")

    assert first == second == "checkout-failure"


def test_manual_fingerprint_of_64_chars_is_kept_verbatim() -> None:
    value = "f" * 64

    assert manual_fingerprint(value) == value


def test_manual_fingerprint_longer_than_64_chars_is_its_sha256_hex() -> None:
    value = "order-service:" + "x" * 100

    stored = manual_fingerprint(value)

    assert stored == hashlib.sha256(value.encode()).hexdigest()
    assert HEX_64.match(stored)
    assert manual_fingerprint(value + "y") != stored


def test_empty_manual_fingerprint_falls_back_to_the_computed_one() -> None:
    exceptions = [exception(frame())]

    assert fingerprint_event(exceptions, "") == computed_fingerprint(exceptions)
    assert fingerprint_event(exceptions, None) == computed_fingerprint(exceptions)


def test_computed_fingerprint_is_a_stable_sha256_hex() -> None:
    build = lambda: [exception(frame("index"), frame("render", lineno=99))]  # noqa: E731

    assert computed_fingerprint(build()) == computed_fingerprint(build())
    assert HEX_64.match(computed_fingerprint(build()))


def test_exception_type_separates_issues() -> None:
    assert computed_fingerprint([exception(frame(), type="TypeError")]) != computed_fingerprint(
        [exception(frame(), type="ValueError")]
    )


def test_message_is_ignored_when_a_frame_is_resolved() -> None:
    first = computed_fingerprint([exception(frame(), value="user 1 not found")])
    second = computed_fingerprint([exception(frame(), value="user 2 not found")])

    assert first == second


def test_message_separates_issues_when_no_frame_is_resolved() -> None:
    first = computed_fingerprint([exception(frame(resolved=False), value="a is undefined")])
    second = computed_fingerprint([exception(frame(resolved=False), value="b is undefined")])

    assert first != second


def test_message_separates_issues_without_a_stack() -> None:
    first = computed_fingerprint([ExceptionEntry(type="Timeout", value="upstream a")])
    second = computed_fingerprint([ExceptionEntry(type="Timeout", value="upstream b")])

    assert first != second


def test_unresolved_frames_are_ignored_when_any_frame_is_resolved() -> None:
    resolved = frame("index")
    with_one = computed_fingerprint([exception(resolved, frame("minified_a", resolved=False))])
    with_other = computed_fingerprint([exception(resolved, frame("minified_b", resolved=False))])

    assert with_one == with_other


def test_resolved_in_app_frames_separate_issues() -> None:
    first = computed_fingerprint([exception(frame("index"), frame("render"))])
    second = computed_fingerprint([exception(frame("index"), frame("save"))])

    assert first != second


def test_library_frames_are_ignored_when_there_are_in_app_frames() -> None:
    app_frame = frame("index")
    first = computed_fingerprint([exception(frame("lib_a", in_app=False), app_frame)])
    second = computed_fingerprint([exception(frame("lib_b", in_app=False), app_frame)])

    assert first == second


def test_without_in_app_frames_the_first_frame_identifies_the_exception() -> None:
    base = [frame("first", in_app=False), frame("second", in_app=False)]
    other_second = [frame("first", in_app=False), frame("other", in_app=False)]
    other_first = [frame("other", in_app=False), frame("second", in_app=False)]

    assert computed_fingerprint([exception(*base)]) == computed_fingerprint(
        [exception(*other_second)]
    )
    assert computed_fingerprint([exception(*base)]) != computed_fingerprint(
        [exception(*other_first)]
    )


def test_line_and_column_identify_a_frame_only_when_its_function_is_unknown() -> None:
    named_here = computed_fingerprint([exception(frame("index", lineno=10))])
    named_there = computed_fingerprint([exception(frame("index", lineno=20))])
    anonymous_here = computed_fingerprint([exception(frame(None, lineno=10))])
    anonymous_there = computed_fingerprint([exception(frame(None, lineno=20))])

    assert named_here == named_there
    assert anonymous_here != anonymous_there


def test_every_exception_of_a_chain_takes_part() -> None:
    cause = exception(frame("connect"), type="ConnectionError")
    other_cause = exception(frame("connect"), type="TimeoutError")
    outer = exception(frame("index"), type="RuntimeError")

    assert computed_fingerprint([outer, cause]) != computed_fingerprint([outer, other_cause])
    assert computed_fingerprint([outer, cause]) != computed_fingerprint([outer])


def test_field_boundaries_cannot_be_shifted_to_collide() -> None:
    assert computed_fingerprint([exception(frame("ab"), type="X")]) != computed_fingerprint(
        [exception(frame("b"), type="Xa")]
    )


def test_grouping_frames_are_the_resolved_in_app_ones_in_stack_order() -> None:
    frames = [
        frame("lib", in_app=False),
        frame("app_one"),
        frame("minified", resolved=False),
        frame("app_two"),
    ]

    assert [f.function for f in grouping_frames(frames)] == ["app_one", "app_two"]


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([], []),
        ([frame("a", resolved=False), frame("b", resolved=False)], ["a", "b"]),
        ([frame("a", in_app=False), frame("b", in_app=False)], ["a"]),
        ([frame("a", in_app=False, resolved=False), frame("b", in_app=False)], ["b"]),
    ],
)
def test_grouping_frames_fall_back_in_order(frames: list[Frame], expected: list[str]) -> None:
    assert [f.function for f in grouping_frames(frames)] == expected


def test_frame_identity_prefers_filename_then_abs_path_then_module() -> None:
    assert frame_identity(Frame(filename="a.py", abs_path="/x/a.py", function="f")) == ["a.py", "f"]
    assert frame_identity(Frame(abs_path="/x/a.py", module="pkg.a", function="f")) == [
        "/x/a.py",
        "f",
    ]
    assert frame_identity(Frame(module="pkg.a", lineno=3, colno=7)) == ["pkg.a", None, 3, 7]
