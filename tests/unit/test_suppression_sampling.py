"""Sampling: a matching event is suppressed by its uuid alone, at the rule's rate."""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.suppression import RuleSpec, compile_rules, is_sampled_out

MATCHING = {"$exception_types": ["TypeError"]}
RULE = {
    "type": "AND",
    "values": [{"key": "$exception_types", "operator": "exact", "value": "TypeError"}],
}
EVENTS_PER_EXAMPLE = 4000
# Five standard deviations of a sampled fraction at its widest (rate 0.5): flakes ~1 in 10^6.
TOLERANCE = 5 * (0.25 / EVENTS_PER_EXAMPLE) ** 0.5


def rule_with_rate(rate: float) -> RuleSpec:
    return RuleSpec(uuid.UUID(int=1), RULE, order_key=0, sampling_rate=rate, disabled=False)


@pytest.mark.parametrize(
    ("uuid_int", "rate", "expected"),
    [
        (0, 0.0, False),
        (0, 0.0001, True),
        (12_345, 0.2345, False),
        (12_345, 0.2346, True),
        (9_999, 0.9999, False),
        (9_999, 1.0, True),
        (2**128 - 1, 1.0, True),
        (2**128 - 1, 0.0, False),
    ],
)
def test_uuid_modulo_10000_below_rate_times_10000_is_sampled_out(
    uuid_int: int, rate: float, expected: bool
) -> None:
    assert is_sampled_out(uuid.UUID(int=uuid_int), rate) is expected


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(min_value=0.0, max_value=1.0), seed=st.integers(0, 2**32))
def test_sampling_suppresses_the_rate_of_matching_events(rate: float, seed: int) -> None:
    rng = random.Random(seed)
    rules = compile_rules([rule_with_rate(rate)])
    events = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(EVENTS_PER_EXAMPLE)]
    suppressed = sum(rules.evaluate(MATCHING, event).suppressed for event in events)
    assert abs(suppressed / EVENTS_PER_EXAMPLE - rate) <= TOLERANCE
    assert not any(rules.evaluate({}, event).suppressed for event in events)


@given(
    event=st.uuids(),
    rate=st.floats(min_value=0.0, max_value=1.0),
    higher=st.floats(min_value=0.0, max_value=1.0),
)
def test_sampling_is_stable_per_uuid_across_workers_and_only_grows_with_the_rate(
    event: uuid.UUID, rate: float, higher: float
) -> None:
    higher = max(rate, higher)
    one_worker = compile_rules([rule_with_rate(rate)])
    another_worker = compile_rules([rule_with_rate(rate)])
    verdict = one_worker.evaluate(MATCHING, event)
    assert one_worker.evaluate(MATCHING, event) == verdict
    assert another_worker.evaluate(MATCHING, event) == verdict
    if verdict.suppressed:
        assert compile_rules([rule_with_rate(higher)]).evaluate(MATCHING, event).suppressed
