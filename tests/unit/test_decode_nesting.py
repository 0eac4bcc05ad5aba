"""The nesting cap judges the document the parser built, however the payload spells it: brackets
inside strings, duplicate keys whose dropped value nested deeper, and nesting right at the limit,
where the walk may stop early only when the brackets left in the payload prove it can."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import DeadLetterReason
from worker.decode import DecodeLimits, Rejection, decode_event

LIMIT = 6
LIMITS = DecodeLimits(
    max_message_bytes=1_000_000,
    max_exceptions=50,
    max_frames_per_exception=500,
    max_nesting_depth=LIMIT,
)


def depth(value: Any) -> int:
    """Containers on the longest path from ``value`` down, ``value`` included."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def refused_as_too_deep(payload: bytes) -> bool:
    result = decode_event(payload, LIMITS)
    return isinstance(result, Rejection) and result.reason is DeadLetterReason.TOO_DEEPLY_NESTED


def chain(levels: int) -> str:
    return "[" * levels + "]" * levels


BRACKETY_TEXT = st.text(alphabet='[]{}ab\\"', max_size=6)
VALUES = st.recursive(
    st.none() | st.integers() | BRACKETY_TEXT,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from("abc"), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400)
@given(value=VALUES, dropped=st.none() | VALUES, strings=st.lists(BRACKETY_TEXT, max_size=3))
def test_a_document_is_refused_as_too_deep_exactly_when_it_nests_deeper_than_the_limit(
    value: Any, dropped: Any, strings: list[str]
) -> None:
    # "v" is sent twice: the parser keeps the second value, so the first only adds brackets.
    members = [f'"s{n}":{msgspec.json.encode(text).decode()}' for n, text in enumerate(strings)]
    if dropped is not None:
        members.append(f'"v":{msgspec.json.encode(dropped).decode()}')
    members.append(f'"v":{msgspec.json.encode(value).decode()}')
    payload = ("{" + ",".join(members) + "}").encode()

    assert refused_as_too_deep(payload) == (depth(msgspec.json.decode(payload)) > LIMIT)


def test_nesting_at_the_limit_with_no_bracket_to_spare_is_accepted() -> None:
    assert not refused_as_too_deep(f'{{"v":{chain(LIMIT - 1)}}}'.encode())
    assert refused_as_too_deep(f'{{"v":{chain(LIMIT)}}}'.encode())


def test_brackets_inside_strings_neither_hide_nor_fake_nesting() -> None:
    closing = '"' + "]}" * LIMIT + '"'
    opening = '"' + "[{" * LIMIT + '"'

    assert refused_as_too_deep(f'{{"s":{closing},"v":{chain(LIMIT)}}}'.encode())
    assert not refused_as_too_deep(f'{{"s":{opening},"v":{chain(LIMIT - 1)}}}'.encode())


def test_a_deep_value_dropped_for_a_duplicate_key_does_not_count() -> None:
    payload = f'{{"v":{chain(LIMIT + 3)},"v":{chain(LIMIT - 1)}}}'.encode()

    assert not refused_as_too_deep(payload)
