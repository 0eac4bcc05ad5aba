"""The filter grammar shared by the API and the worker: what it accepts, normalises and rejects."""

from __future__ import annotations

from typing import Any

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from schemas.property_filters import (
    DERIVED_KEYS,
    MAX_FILTER_COUNT,
    MAX_NESTING_DEPTH,
    MAX_REGEX_BYTES,
    MAX_RULE_REGEX_INSTRUCTIONS,
    OPERATORS,
    FilterValidationError,
    VersionRange,
    filter_number,
    filter_text,
    parse_version,
    validate_filters,
    version_range,
)


def group(*values: Any, type: str = "AND") -> dict[str, Any]:
    return {"type": type, "values": list(values)}


def prop(operator: Any, value: Any = None, key: str = "$exception_types") -> dict[str, Any]:
    return {"key": key, "type": "event", "operator": operator, "value": value}


def rejection(filters: object) -> tuple[str, str]:
    with pytest.raises(FilterValidationError) as caught:
        validate_filters(filters)
    return caught.value.attr, caught.value.message


def nested(depth: int) -> dict[str, Any]:
    filters = group(prop("exact", "TypeError"))
    for _ in range(depth - 1):
        filters = group(filters)
    return filters


def test_grammar_lists_every_operator_and_derived_key() -> None:
    assert {
        "exact",
        "is_not",
        "icontains",
        "not_icontains",
        "regex",
        "not_regex",
        "is_set",
        "is_not_set",
        "gt",
        "gte",
        "lt",
        "lte",
        "semver_eq",
        "semver_neq",
        "semver_gt",
        "semver_gte",
        "semver_lt",
        "semver_lte",
        "semver_tilde",
        "semver_caret",
        "semver_wildcard",
    } == OPERATORS
    assert {
        "$exception_types",
        "$exception_values",
        "$exception_sources",
        "$exception_functions",
        "$exception_handled",
        "$exception_fingerprint",
        "$exception_releases",
    } == DERIVED_KEYS


@pytest.mark.parametrize("filters", [None, {}])
def test_absent_or_empty_filters_mean_match_all(filters: object) -> None:
    assert validate_filters(filters) is None


def test_reference_shape_is_returned_unchanged() -> None:
    filters = group(
        prop("exact", ["TypeError"]),
        group(prop("icontains", "undefined", key="$exception_values"), type="OR"),
    )
    assert validate_filters(filters) == filters


def test_wrapped_form_the_ui_sends_is_accepted_as_nesting() -> None:
    filters = group(group(prop("regex", "^Type")), type="OR")
    assert validate_filters(filters) == filters


def test_missing_parts_get_the_reference_defaults() -> None:
    filters = {"type": "or", "values": [{"values": [{"key": "$exception_types", "value": "X"}]}]}
    assert validate_filters(filters) == {
        "type": "OR",
        "values": [
            {
                "type": "AND",
                "values": [
                    {"key": "$exception_types", "type": "event", "operator": "exact", "value": "X"}
                ],
            }
        ],
    }


def test_keys_the_grammar_does_not_know_are_kept_for_the_round_trip() -> None:
    filters = group({**prop("exact", "X"), "label": "Type is X"})
    assert validate_filters(filters) == filters


@pytest.mark.parametrize("operator", ["is_set", "is_not_set"])
def test_set_operators_need_no_value(operator: str) -> None:
    filters = group({"key": "$release", "operator": operator})
    assert validate_filters(filters) == group(
        {"key": "$release", "type": "event", "operator": operator}
    )


def test_nesting_up_to_the_limit_is_accepted() -> None:
    filters = nested(MAX_NESTING_DEPTH)
    assert validate_filters(filters) == filters


def test_nesting_past_the_limit_is_rejected() -> None:
    attr, message = rejection(nested(MAX_NESTING_DEPTH + 1))
    assert attr == "filters" + ".values.0" * MAX_NESTING_DEPTH
    assert message == "groups are nested deeper than 20"


def test_up_to_the_limit_of_filters_and_groups_is_accepted() -> None:
    filters = group(*[prop("exact", str(i)) for i in range(MAX_FILTER_COUNT - 1)])
    assert validate_filters(filters) == filters


def test_more_filters_and_groups_than_the_limit_are_rejected() -> None:
    attr, message = rejection(group(*[prop("exact", str(i)) for i in range(MAX_FILTER_COUNT)]))
    assert attr == f"filters.values.{MAX_FILTER_COUNT - 1}"
    assert message == "more than 1000 filters and groups in one rule"


def test_regex_at_the_size_limit_is_accepted_when_its_program_is_small() -> None:
    # A character class of repeated letters is 10 kB of pattern but a tiny RE2 program.
    filters = group(prop("regex", "[" + "a" * (MAX_REGEX_BYTES - 2) + "]"))
    assert validate_filters(filters) == filters


@pytest.mark.parametrize(
    ("filters", "attr", "message"),
    [
        ("TypeError", "filters", "must be an object with 'type' and 'values'"),
        (
            prop("exact", "X"),
            "filters",
            "must be a group {'type': 'AND'|'OR', 'values': [...]}, not a property filter",
        ),
        (
            {"type": "XOR", "values": []},
            "filters.type",
            "group type must be 'AND' or 'OR', got 'XOR'",
        ),
        ({"type": "AND", "values": "X"}, "filters.values", "must be a list"),
        (group(group(type="OR") | {"values": {}}), "filters.values.0.values", "must be a list"),
        (group("TypeError"), "filters.values.0", "must be a group or a property filter object"),
        (
            group({"type": "event", "operator": "exact", "value": "X"}),
            "filters.values.0",
            "a property filter needs a non-empty string key",
        ),
        (
            group(prop("exact", "X", key="")),
            "filters.values.0",
            "a property filter needs a non-empty string key",
        ),
        (
            group(prop("exact", "X") | {"type": 3}),
            "filters.values.0.type",
            "must be a non-empty string",
        ),
        (
            group(prop("exact", "X"), prop("equals", "X")),
            "filters.values.1.operator",
            "unknown operator 'equals'; expected one of " + ", ".join(sorted(OPERATORS)),
        ),
        (
            group(prop(["exact"], "X")),
            "filters.values.0.operator",
            "unknown operator ['exact']; expected one of " + ", ".join(sorted(OPERATORS)),
        ),
        (group(prop("exact")), "filters.values.0.value", "operator 'exact' needs a value"),
        (group(prop("regex", [])), "filters.values.0.value", "operator 'regex' needs a value"),
        (
            group(prop("exact", ["X", {"a": 1}])),
            "filters.values.0.value.1",
            "must be a string, a number or a boolean",
        ),
        (
            group(prop("exact", ["X", None])),
            "filters.values.0.value.1",
            "must be a string, a number or a boolean",
        ),
        (
            group(prop("regex", r"(a)\1")),
            "filters.values.0.value",
            r"invalid regex: invalid escape sequence: \1",
        ),
        (
            group(prop("not_regex", ["ok", "a(?=b)"])),
            "filters.values.0.value.1",
            "invalid regex: invalid perl operator: (?=",
        ),
        (
            group(prop("regex", "a" * (MAX_REGEX_BYTES + 1))),
            "filters.values.0.value",
            "regex is longer than 10000 bytes",
        ),
        (
            group(prop("gt", "ten")),
            "filters.values.0.value",
            "operator 'gt' needs a number, got 'ten'",
        ),
        (
            group(prop("lte", True)),
            "filters.values.0.value",
            "operator 'lte' needs a number, got True",
        ),
        (
            group(prop("semver_gte", "one.two")),
            "filters.values.0.value",
            "'one.two' is not a version like 1.2.3",
        ),
        (
            group(prop("semver_eq", "01.2.3")),
            "filters.values.0.value",
            "'01.2.3' is not a version like 1.2.3",
        ),
        (
            group(prop("semver_tilde", "~latest")),
            "filters.values.0.value",
            "'~latest' is not a version range for 'semver_tilde'",
        ),
        (
            group(prop("semver_wildcard", "*")),
            "filters.values.0.value",
            "'*' is not a version range for 'semver_wildcard'",
        ),
        (
            group(prop("semver_wildcard", "1.*.3")),
            "filters.values.0.value",
            "'1.*.3' is not a version range for 'semver_wildcard'",
        ),
    ],
)
def test_invalid_filters_are_rejected_naming_the_part(
    filters: object, attr: str, message: str
) -> None:
    assert rejection(filters) == (attr, message)


def test_validation_error_is_a_value_error_naming_attr_and_message() -> None:
    with pytest.raises(ValueError, match=r"^filters\.values: must be a list$"):
        validate_filters({"type": "AND", "values": 1})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("TypeError", "TypeError"),
        (True, "true"),
        (False, "false"),
        (404, "404"),
        (1.0, "1"),
        (1.5, "1.5"),
        ({"b": 1, "a": [2]}, '{"a":[2],"b":1}'),
    ],
)
def test_values_compare_as_their_json_text(value: object, text: str) -> None:
    assert filter_text(value) == text


@pytest.mark.parametrize(
    ("value", "number"),
    [(3, 3.0), (2.5, 2.5), ("10", 10.0), (" -1.5 ", -1.5), ("1e3", 1000.0)],
)
def test_numbers_and_numeric_strings_compare_as_numbers(value: object, number: float) -> None:
    assert filter_number(value) == number


@pytest.mark.parametrize("value", ["ten", "", True, None, [1], "nan", "inf", float("nan")])
def test_non_numbers_have_no_number(value: object) -> None:
    assert filter_number(value) is None


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1.2.3", "1.2.3"),
        ("v1.2", "1.2.0"),
        ("V2", "2.0.0"),
        (" 1.2.3-rc.1+build.7 ", "1.2.3-rc.1+build.7"),
        ("1.2-beta", "1.2.0-beta"),
    ],
)
def test_versions_are_padded_and_lose_their_v(text: str, version: str) -> None:
    assert parse_version(text) == semver.Version.parse(version)
    assert str(parse_version(text)) == version


@pytest.mark.parametrize("text", ["", "latest", "1.2.3.4", "01.2.3", "1.2.3-", "a1b2c3"])
def test_non_versions_do_not_parse(text: str) -> None:
    assert parse_version(text) is None


@pytest.mark.parametrize(
    ("operator", "operand", "lowest", "below"),
    [
        ("semver_tilde", "~1.2.3", "1.2.3", (1, 3, 0)),
        ("semver_tilde", "1.2.3", "1.2.3", (1, 3, 0)),
        ("semver_tilde", "~1.2", "1.2.0", (1, 3, 0)),
        ("semver_tilde", "~1", "1.0.0", (2, 0, 0)),
        ("semver_caret", "^1.2.3", "1.2.3", (2, 0, 0)),
        ("semver_caret", "^0.2.3", "0.2.3", (0, 3, 0)),
        ("semver_caret", "^0.0.3", "0.0.3", (0, 0, 4)),
        ("semver_caret", "^0.0", "0.0.0", (0, 1, 0)),
        ("semver_caret", "^0", "0.0.0", (1, 0, 0)),
        ("semver_caret", "v2.1", "2.1.0", (3, 0, 0)),
        ("semver_wildcard", "1.2.*", "1.2.0", (1, 3, 0)),
        ("semver_wildcard", "1.2.x", "1.2.0", (1, 3, 0)),
        ("semver_wildcard", "1.2", "1.2.0", (1, 3, 0)),
        ("semver_wildcard", "1.*", "1.0.0", (2, 0, 0)),
        ("semver_wildcard", "1.*.*", "1.0.0", (2, 0, 0)),
        ("semver_wildcard", "1.2.3", "1.2.3", (1, 2, 4)),
    ],
)
def test_version_ranges_follow_npm(
    operator: str, operand: str, lowest: str, below: tuple[int, int, int]
) -> None:
    assert version_range(operator, operand) == VersionRange(semver.Version.parse(lowest), below)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "values", "key", "operator", "value", "label"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
OPERATOR_NAMES = st.sampled_from(sorted(OPERATORS))


@given(st.dictionaries(st.sampled_from(["type", "values"]), JSON) | JSON)
def test_any_json_is_either_accepted_or_rejected_with_a_validation_error(filters: object) -> None:
    try:
        validate_filters(filters)
    except FilterValidationError as exc:
        assert exc.attr.startswith("filters")


@given(operator=OPERATOR_NAMES, value=JSON)
def test_any_operand_is_either_accepted_or_rejected_with_a_validation_error(
    operator: str, value: object
) -> None:
    try:
        validate_filters(group(prop(operator, value)))
    except FilterValidationError as exc:
        assert exc.attr.startswith("filters.values.0.value")


def test_a_rule_whose_regexes_compile_to_a_huge_program_is_refused_even_when_short() -> None:
    short_but_costly = {
        "type": "AND",
        "values": [{"key": "$exception_values", "operator": "regex", "value": r"\w{999}" * 80}],
    }
    with pytest.raises(FilterValidationError) as raised:
        validate_filters(short_but_costly)
    assert raised.value.attr == "filters.values.0.value"
    assert f"more than {MAX_RULE_REGEX_INSTRUCTIONS} RE2 instructions" in raised.value.message


def test_the_regex_budget_is_shared_by_every_regex_of_a_rule() -> None:
    one = {"key": "$exception_values", "operator": "regex", "value": r"\w{100}"}
    assert validate_filters({"type": "AND", "values": [one]}) is not None
    with pytest.raises(FilterValidationError) as raised:
        validate_filters({"type": "OR", "values": [one] * 100})
    assert "RE2 instructions" in raised.value.message
