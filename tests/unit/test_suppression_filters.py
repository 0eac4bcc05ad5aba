"""Evaluating filters on one event: every operator on scalars and lists, negations, groups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.property_filters import OPERATORS, FilterValidationError, validate_filters
from worker.suppression.predicates import NEGATIONS, compile_filters, filter_keys

KEY = "prop"


def matches(filters: dict[str, Any] | None, properties: dict[str, Any]) -> bool:
    return compile_filters(validate_filters(filters))(properties)


def prop(operator: str, value: Any = None, key: str = KEY) -> dict[str, Any]:
    return {"key": key, "type": "event", "operator": operator, "value": value}


def group(*values: Any, type: str = "AND") -> dict[str, Any]:
    return {"type": type, "values": list(values)}


SCALAR_CASES = [
    ("exact", "TypeError", "TypeError", True),
    ("exact", "TypeError", "typeerror", False),
    ("exact", ["ValueError", "TypeError"], "TypeError", True),
    ("exact", ["ValueError", "KeyError"], "TypeError", False),
    ("exact", "true", True, True),
    ("exact", True, "true", True),
    ("exact", "false", True, False),
    ("exact", "404", 404, True),
    ("exact", 1, 1.0, True),
    ("is_not", "TypeError", "TypeError", False),
    ("is_not", "TypeError", "ValueError", True),
    ("is_not", ["ValueError", "TypeError"], "TypeError", False),
    ("is_not", False, "true", True),
    ("icontains", "UNDEF", "x is undefined", True),
    ("icontains", "null", "x is undefined", False),
    ("icontains", ["null", " IS "], "x is undefined", True),
    ("icontains", "rue", True, True),
    ("not_icontains", "UNDEF", "x is undefined", False),
    ("not_icontains", "null", "x is undefined", True),
    ("not_icontains", ["null", "X IS"], "x is undefined", False),
    ("regex", "^Type", "TypeError", True),
    ("regex", "^Value", "TypeError", False),
    ("regex", "(?i)error$", "TYPEERROR", True),
    ("regex", ["^Key", r"Err\w+"], "TypeError", True),
    ("regex", r"^4\d\d$", 404, True),
    ("not_regex", "^Type", "TypeError", False),
    ("not_regex", "^Value", "TypeError", True),
    ("not_regex", ["^Key", "^Type"], "TypeError", False),
    ("gt", 10, 11, True),
    ("gt", 10, 10, False),
    ("gt", "10", "10.5", True),
    ("gt", 10, "eleven", False),
    ("gt", 0, True, False),
    ("gt", [100, 5], 6, True),
    ("gte", 10, 10, True),
    ("gte", 10, 9.99, False),
    ("gte", 10, "abc", False),
    ("lt", 10, 9, True),
    ("lt", 10, 10, False),
    ("lt", 10, "-3", True),
    ("lt", 10, "abc", False),
    ("lte", 10, 10.0, True),
    ("lte", 10, 10.01, False),
    ("lte", 10, None, False),
    ("semver_eq", "1.2.3", "1.2.3", True),
    ("semver_eq", "1.2", "v1.2.0", True),
    ("semver_eq", "1.2.3", "1.2.3+build.5", True),
    ("semver_eq", "1.2.3", "1.2.4", False),
    ("semver_eq", ["2.0.0", "1.2.3"], "1.2.3", True),
    ("semver_neq", "1.2.3", "1.2.4", True),
    ("semver_neq", "1.2.3", "1.2.3", False),
    ("semver_neq", "1.2.3", "not-a-version", True),
    ("semver_gt", "1.2.3", "1.10.0", True),
    ("semver_gt", "1.2.3", "1.2.3", False),
    ("semver_gt", "1.2.3", "1.2.4-rc.1", True),
    ("semver_gt", "1.2.3", "not-a-version", False),
    ("semver_gte", "1.2.3", "1.2.3", True),
    ("semver_gte", "1.2.3", "1.2.3-rc.1", False),
    ("semver_lt", "2.0.0", "2.0.0-beta", True),
    ("semver_lt", "2.0.0", "2.0.0", False),
    ("semver_lt", "2.0.0", "v1", True),
    ("semver_lte", "2.0.0", "2.0.0", True),
    ("semver_lte", "2.0.0", "2.0.1", False),
    ("semver_tilde", "~1.2.3", "1.2.9", True),
    ("semver_tilde", "~1.2.3", "1.2.2", False),
    ("semver_tilde", "~1.2.3", "1.3.0", False),
    ("semver_tilde", "~1.2.3", "1.3.0-rc.1", False),
    ("semver_tilde", "~1", "1.9.0", True),
    ("semver_caret", "^1.2.3", "1.9.9", True),
    ("semver_caret", "^1.2.3", "2.0.0", False),
    ("semver_caret", "^0.2.3", "0.2.9", True),
    ("semver_caret", "^0.2.3", "0.3.0", False),
    ("semver_caret", "^0.0.3", "0.0.3", True),
    ("semver_caret", "^0.0.3", "0.0.4", False),
    ("semver_wildcard", "1.2.*", "1.2.7", True),
    ("semver_wildcard", "1.2.*", "1.3.0", False),
    ("semver_wildcard", "1.2.*", "1.1.9", False),
    ("semver_wildcard", "1.*", "v1.99", True),
    ("semver_wildcard", ["3.*", "1.2.x"], "1.2.0", True),
    ("is_set", None, "TypeError", True),
    ("is_set", None, "", True),
    ("is_set", None, False, True),
    ("is_set", None, None, False),
    ("is_not_set", None, "TypeError", False),
    ("is_not_set", None, None, True),
]


@pytest.mark.parametrize(("operator", "value", "property_value", "expected"), SCALAR_CASES)
def test_operator_on_a_scalar_property(
    operator: str, value: Any, property_value: Any, expected: bool
) -> None:
    assert matches(group(prop(operator, value)), {KEY: property_value}) is expected


def test_every_operator_has_scalar_cases() -> None:
    assert {case[0] for case in SCALAR_CASES} == OPERATORS


LIST_CASES = [
    ("exact", "TypeError", ["ValueError", "TypeError"], True),
    ("exact", "TypeError", ["ValueError"], False),
    ("exact", "TypeError", [None, "TypeError"], True),
    ("exact", ["KeyError", "TypeError"], ["ValueError", "TypeError"], True),
    ("exact", "false", [True, False], True),
    ("is_not", "TypeError", ["ValueError", "TypeError"], False),
    ("is_not", "TypeError", ["ValueError", "KeyError"], True),
    ("is_not", ["KeyError", "TypeError"], ["ValueError", "TypeError"], False),
    ("icontains", "undefined", ["boom", "X IS UNDEFINED"], True),
    ("icontains", "undefined", ["boom"], False),
    ("not_icontains", "undefined", ["boom", "X IS UNDEFINED"], False),
    ("not_icontains", "undefined", ["boom"], True),
    ("regex", r"\.py$", ["app.js", "app/views.py"], True),
    ("regex", r"\.py$", ["app.js"], False),
    ("not_regex", r"\.py$", ["app.js", "app/views.py"], False),
    ("not_regex", r"\.py$", ["app.js"], True),
    ("gt", 10, [1, 20], True),
    ("gt", 10, [1, "2"], False),
    ("gte", 10, ["x", 10], True),
    ("lt", 10, [20, 30], False),
    ("lte", 10, [20, "10"], True),
    ("semver_eq", "1.2.3", ["1.0.0", "1.2.3"], True),
    ("semver_neq", "1.0.0", ["1.0.0", "2.0.0"], False),
    ("semver_neq", "3.0.0", ["1.0.0", "2.0.0"], True),
    ("semver_gt", "1.5.0", ["1.0.0", "2.0.0"], True),
    ("semver_gte", "3.0.0", ["1.0.0", "2.0.0"], False),
    ("semver_lt", "1.5.0", ["1.0.0", "2.0.0"], True),
    ("semver_lte", "0.9.0", ["1.0.0", "2.0.0"], False),
    ("semver_tilde", "~2.0.0", ["1.0.0", "2.0.5"], True),
    ("semver_caret", "^3.0.0", ["1.0.0", "2.0.5"], False),
    ("semver_wildcard", "2.*", ["1.0.0", "2.0.5"], True),
    ("is_set", None, ["TypeError"], True),
    ("is_set", None, [], False),
    ("is_not_set", None, [], True),
    ("is_not_set", None, ["TypeError"], False),
]


@pytest.mark.parametrize(("operator", "value", "property_value", "expected"), LIST_CASES)
def test_operator_on_a_list_property_matches_any_element_or_none_when_negated(
    operator: str, value: Any, property_value: list[Any], expected: bool
) -> None:
    assert matches(group(prop(operator, value)), {KEY: property_value}) is expected


def test_every_operator_has_list_cases() -> None:
    assert {case[0] for case in LIST_CASES} == OPERATORS


OPERAND_OF = {
    "regex": ".*",
    "not_regex": ".*",
    "gt": 0,
    "gte": 0,
    "lt": 0,
    "lte": 0,
    "semver_tilde": "~1.0.0",
    "semver_caret": "^1.0.0",
    "semver_wildcard": "1.*",
}
POSITIVE = sorted(OPERATORS - NEGATIONS.keys() - {"is_set", "is_not_set"})


@pytest.mark.parametrize("operator", POSITIVE)
@pytest.mark.parametrize("properties", [{}, {KEY: None}, {KEY: []}])
def test_positive_operators_never_match_a_missing_property(
    operator: str, properties: dict[str, Any]
) -> None:
    assert matches(group(prop(operator, OPERAND_OF.get(operator, "1.0.0"))), properties) is False


@pytest.mark.parametrize("operator", sorted(NEGATIONS))
@pytest.mark.parametrize("properties", [{}, {KEY: None}, {KEY: []}])
def test_negated_operators_always_match_a_missing_property(
    operator: str, properties: dict[str, Any]
) -> None:
    assert matches(group(prop(operator, OPERAND_OF.get(operator, "1.0.0"))), properties) is True


@pytest.mark.parametrize(("operator", "expected"), [("is_set", False), ("is_not_set", True)])
def test_absent_key_is_not_set(operator: str, expected: bool) -> None:
    assert matches(group(prop(operator)), {"other": "x"}) is expected


def test_operator_defaults_to_exact_and_scalar_value_means_a_list_of_one() -> None:
    filters = group({"key": KEY, "value": "TypeError"})
    assert matches(filters, {KEY: ["TypeError"]}) is True
    assert matches(filters, {KEY: "TypeErrors"}) is False


@pytest.mark.parametrize("filters", [None, {}, group(), group(type="OR"), group(group())])
def test_empty_filters_match_every_event(filters: dict[str, Any] | None) -> None:
    assert matches(filters, {}) is True
    assert matches(filters, {KEY: "anything"}) is True


TYPE_IS_TYPEERROR = prop("exact", "TypeError", key="type")
UNHANDLED = prop("exact", False, key="handled")
FROM_VENDOR = prop("regex", "^vendor/", key="source")
NESTED = group(TYPE_IS_TYPEERROR, group(UNHANDLED, FROM_VENDOR, type="OR"))


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"type": "TypeError", "handled": False, "source": "app.py"}, True),
        ({"type": "TypeError", "handled": True, "source": "vendor/x.js"}, True),
        ({"type": "TypeError", "handled": True, "source": "app.py"}, False),
        ({"type": "KeyError", "handled": False, "source": "vendor/x.js"}, False),
        ({"handled": False, "source": "vendor/x.js"}, False),
    ],
)
def test_and_group_containing_an_or_group(properties: dict[str, Any], expected: bool) -> None:
    assert matches(NESTED, properties) is expected


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"type": "TypeError", "handled": False}, True),
        ({"type": "TypeError", "handled": True}, False),
        ({"type": "KeyError", "source": "vendor/a.js"}, True),
        ({"type": "KeyError", "source": "app.js"}, False),
    ],
)
def test_or_of_and_groups(properties: dict[str, Any], expected: bool) -> None:
    filters = group(group(TYPE_IS_TYPEERROR, UNHANDLED), group(FROM_VENDOR), type="OR")
    assert matches(filters, properties) is expected


def test_an_empty_group_beside_a_failing_filter_does_not_rescue_an_and() -> None:
    filters = group(group(), TYPE_IS_TYPEERROR)
    assert matches(filters, {"type": "KeyError"}) is False
    assert matches(filters, {"type": "TypeError"}) is True


def test_deeply_nested_groups_evaluate_to_their_innermost_filter() -> None:
    filters = group(TYPE_IS_TYPEERROR)
    for _ in range(19):
        filters = group(filters, type="OR")
    assert matches(filters, {"type": "TypeError"}) is True
    assert matches(filters, {"type": "KeyError"}) is False


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("(a+)+$", False), ("(a+)+b", False), ("^(a|aa)+$", False), ("^(a+)+!$", True)],
)
def test_catastrophic_backtracking_regex_completes_on_a_100_kb_value(
    pattern: str, expected: bool
) -> None:
    # A backtracking engine would not finish the first three in a lifetime: 2^100000 paths.
    value = "a" * 100_000 + "!"
    assert matches(group(prop("regex", pattern)), {KEY: value}) is expected
    assert matches(group(prop("not_regex", pattern)), {KEY: value}) is (not expected)


def test_filter_keys_lists_each_named_property_once_in_order() -> None:
    filters = validate_filters(NESTED | {"values": [*NESTED["values"], TYPE_IS_TYPEERROR]})
    assert filter_keys(filters) == ("type", "handled", "source")
    assert filter_keys(None) == ()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@given(operator=st.sampled_from(sorted(OPERATORS)), operand=JSON, property_value=JSON)
def test_any_accepted_filter_evaluates_any_json_property_without_raising(
    operator: str, operand: Any, property_value: Any
) -> None:
    try:
        filters = validate_filters(group(prop(operator, operand)))
    except FilterValidationError:
        return
    assert type(compile_filters(filters)({KEY: property_value})) is bool
