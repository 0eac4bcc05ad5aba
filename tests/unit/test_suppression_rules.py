"""A project's rule set: order, first match decides, sampling, and rules that fail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from worker.suppression import RuleFailure, RuleSpec, Verdict, compile_rules


def rule_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def type_is(*types: str) -> dict[str, Any]:
    return {
        "type": "AND",
        "values": [{"key": "$exception_types", "operator": "exact", "value": list(types)}],
    }


def spec(
    n: int,
    filters: dict[str, Any] | None,
    order_key: int = 0,
    sampling_rate: float = 1.0,
    disabled: bool = False,
) -> RuleSpec:
    return RuleSpec(rule_id(n), filters, order_key, sampling_rate, disabled)


TYPE_ERROR = {"$exception_types": ["TypeError"]}
# uuid.int % 10000 == 5000: suppressed at a rate above 0.5, kept at or below it.
MIDDLE_UUID = uuid.UUID(int=987 * 10_000 + 5000)


def test_no_rules_suppress_nothing() -> None:
    assert compile_rules([]).evaluate(TYPE_ERROR, MIDDLE_UUID) == Verdict(False, None, [])


def test_matching_rule_with_full_rate_suppresses() -> None:
    rules = compile_rules([spec(1, type_is("KeyError")), spec(2, type_is("TypeError"))])
    assert rules.evaluate(TYPE_ERROR, MIDDLE_UUID) == Verdict(True, rule_id(2), [])


def test_event_no_rule_matches_is_kept() -> None:
    rules = compile_rules([spec(1, type_is("KeyError"))])
    assert rules.evaluate(TYPE_ERROR, MIDDLE_UUID) == Verdict(False, None, [])


def test_rule_without_filters_matches_every_event() -> None:
    rules = compile_rules([spec(1, None)])
    assert rules.evaluate({}, MIDDLE_UUID) == Verdict(True, rule_id(1), [])


def test_first_matching_rule_by_order_key_decides_even_when_it_keeps_the_event() -> None:
    rules = compile_rules(
        [
            spec(1, type_is("TypeError"), order_key=5, sampling_rate=1.0),
            spec(2, type_is("TypeError"), order_key=1, sampling_rate=0.5),
        ]
    )
    assert rules.rule_ids == [rule_id(2), rule_id(1)]
    assert rules.evaluate(TYPE_ERROR, MIDDLE_UUID) == Verdict(False, rule_id(2), [])


def test_rules_with_equal_order_key_run_in_id_order() -> None:
    rules = compile_rules(
        [
            spec(9, type_is("TypeError"), sampling_rate=1.0),
            spec(3, type_is("TypeError"), sampling_rate=0.0),
        ]
    )
    assert rules.rule_ids == [rule_id(3), rule_id(9)]
    assert rules.evaluate(TYPE_ERROR, MIDDLE_UUID) == Verdict(False, rule_id(3), [])


def test_sampling_rate_suppresses_by_the_event_uuid() -> None:
    rules = compile_rules([spec(1, type_is("TypeError"), sampling_rate=0.5001)])
    assert rules.evaluate(TYPE_ERROR, MIDDLE_UUID).suppressed is True
    assert rules.evaluate(TYPE_ERROR, uuid.UUID(int=5001)).suppressed is False


def test_disabled_rules_are_skipped() -> None:
    rules = compile_rules(
        [spec(1, type_is("TypeError"), disabled=True), spec(2, type_is("KeyError"))]
    )
    assert rules.rule_ids == [rule_id(2)]
    assert rules.evaluate(TYPE_ERROR, MIDDLE_UUID) == Verdict(False, None, [])


def test_rule_with_invalid_filters_is_a_compile_failure_and_the_rest_still_run() -> None:
    bad = {"type": "AND", "values": [{"key": "x", "operator": "regex", "value": "(a)\\1"}]}
    rules = compile_rules([spec(1, bad), spec(2, type_is("TypeError"))])
    assert rules.compile_failures == [
        RuleFailure(
            rule_id(1),
            "invalid filters: filters.values.0.value: invalid regex: invalid escape sequence: \\1",
            {},
        )
    ]
    assert rules.rule_ids == [rule_id(2)]
    assert rules.evaluate(TYPE_ERROR, MIDDLE_UUID) == Verdict(True, rule_id(2), [])


class ExplodingProperties(Mapping[str, Any]):
    """Event properties whose ``exploding`` key raises when read, counting the reads."""

    def __init__(self, properties: dict[str, Any]) -> None:
        self._properties = properties
        self.exploding_reads = 0

    def __getitem__(self, key: str) -> Any:
        if key == "exploding":
            self.exploding_reads += 1
            raise RuntimeError("boom")
        return self._properties[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._properties)

    def __len__(self) -> int:
        return len(self._properties)


def test_rule_failing_at_run_time_is_reported_once_disabled_and_the_event_still_decided() -> None:
    failing = {
        "type": "OR",
        "values": [
            {"key": "$exception_types", "operator": "exact", "value": "KeyError"},
            {"key": "exploding", "operator": "exact", "value": "x"},
        ],
    }
    rules = compile_rules([spec(1, failing, order_key=0), spec(2, type_is("TypeError"), 1)])
    properties = ExplodingProperties({**TYPE_ERROR, "exploding": "x"})

    first = rules.evaluate(properties, MIDDLE_UUID)
    second = rules.evaluate(properties, MIDDLE_UUID)

    failure = RuleFailure(
        rule_id(1),
        "RuntimeError: boom",
        {"$exception_types": ["TypeError"], "exploding": "<unreadable: RuntimeError>"},
    )
    assert first == Verdict(True, rule_id(2), [failure])
    assert failure.disabled_data == {
        "message": "RuntimeError: boom",
        "props": {"$exception_types": ["TypeError"], "exploding": "<unreadable: RuntimeError>"},
    }
    assert second == Verdict(True, rule_id(2), [])
    assert rules.rule_ids == [rule_id(2)]
    # One read by the rule, one by the failure summary; none after the rule is disabled.
    assert properties.exploding_reads == 2


def test_failure_props_are_a_bounded_summary_of_the_keys_the_rule_names() -> None:
    failing = {
        "type": "AND",
        "values": [
            {"key": "exploding", "operator": "exact", "value": "x"},
            {"key": "long", "operator": "exact", "value": "x"},
            {"key": "many", "operator": "exact", "value": "x"},
        ],
    }
    properties = ExplodingProperties(
        {"long": "y" * 5000, "many": list(range(50)), "unrelated": "secret"}
    )
    (failure,) = compile_rules([spec(1, failing)]).evaluate(properties, MIDDLE_UUID).failures
    assert failure.props == {
        "exploding": "<unreadable: RuntimeError>",
        "long": "y" * 200,
        "many": list(range(10)),
    }
