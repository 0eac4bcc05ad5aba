"""Compiles a validated property-group filter into a predicate over one event's properties.

Every operand is parsed here, once per config version (regexes, lower-cased needles, numbers,
versions); the predicates only read the event. It never validates: it takes the output of
``schemas.property_filters.validate_filters``. The worker sees only the event, so a filter of any
``type`` (event, person, ...) reads the event property named by its key.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import semver

from schemas.property_filters import (
    NUMERIC_OPERATORS,
    VALUELESS_OPERATORS,
    VERSION_OPERATORS,
    VERSION_RANGE_OPERATORS,
    compile_regex,
    filter_number,
    filter_text,
    is_group,
    operand_list,
    parse_version,
    version_range,
)

Predicate = Callable[[Mapping[str, Any]], bool]
_ElementTest = Callable[[Any], bool]

# A negated operator matches when its positive twin matches no element of the property, so a
# missing property or an empty list matches every negated operator.
NEGATIONS = {
    "is_not": "exact",
    "not_icontains": "icontains",
    "not_regex": "regex",
    "semver_neq": "semver_eq",
}
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": op.gt,
    "gte": op.ge,
    "lt": op.lt,
    "lte": op.le,
    "semver_eq": op.eq,
    "semver_gt": op.gt,
    "semver_gte": op.ge,
    "semver_lt": op.lt,
    "semver_lte": op.le,
}
# Longer texts are not release versions; the bound also caps what the version cache can hold.
MAX_VERSION_CHARS = 256


def compile_filters(filters: dict[str, Any] | None) -> Predicate:
    """The predicate of validated filters; None (no filters) matches every event."""
    return _match_all if filters is None else _compile_node(filters)


def filter_keys(filters: dict[str, Any] | None) -> tuple[str, ...]:
    """The property keys the filters name, in order of first appearance."""
    if filters is None:
        return ()
    if is_group(filters):
        keys = (key for child in filters["values"] for key in filter_keys(child))
        return tuple(dict.fromkeys(keys))
    return (filters["key"],)


def _match_all(properties: Mapping[str, Any]) -> bool:
    return True


def _compile_node(node: dict[str, Any]) -> Predicate:
    if not is_group(node):
        return _compile_property(node)
    children = tuple(_compile_node(child) for child in node["values"])
    # An empty group matches every event, whatever its type, as in the reference.
    if not children:
        return _match_all
    if len(children) == 1:
        return children[0]
    if node["type"] == "AND":

        def all_match(properties: Mapping[str, Any]) -> bool:
            return all(child(properties) for child in children)

        return all_match

    def any_match(properties: Mapping[str, Any]) -> bool:
        return any(child(properties) for child in children)

    return any_match


def _compile_property(prop: dict[str, Any]) -> Predicate:
    key = prop["key"]
    operator = prop["operator"]
    if operator in VALUELESS_OPERATORS:
        wants_set = operator == "is_set"

        def is_set(properties: Mapping[str, Any]) -> bool:
            value = properties.get(key)
            # Derived list keys are always present, so an empty list counts as not set.
            return (value is not None and value != []) == wants_set

        return is_set

    negated = operator in NEGATIONS
    test = _element_test(NEGATIONS.get(operator, operator), operand_list(prop["value"]))

    def matches(properties: Mapping[str, Any]) -> bool:
        value = properties.get(key)
        if value is None:
            hit = False
        elif isinstance(value, list):
            hit = any(test(element) for element in value if element is not None)
        else:
            hit = test(value)
        return hit != negated

    return matches


def _element_test(operator: str, operands: list[Any]) -> _ElementTest:
    if operator == "exact":
        wanted = frozenset(filter_text(operand) for operand in operands)
        return lambda element: _text(element) in wanted
    if operator == "icontains":
        needles = tuple(filter_text(operand).lower() for operand in operands)
        return lambda element: _contains_any(_text(element).lower(), needles)
    if operator == "regex":
        patterns = tuple(compile_regex(filter_text(operand)) for operand in operands)
        return lambda element: _search_any(_text(element), patterns)
    if operator in NUMERIC_OPERATORS:
        compare = _COMPARISONS[operator]
        bounds = tuple(filter_number(operand) for operand in operands)
        return lambda element: _compare_any(filter_number(element), bounds, compare)
    if operator in VERSION_OPERATORS:
        compare = _COMPARISONS[operator]
        versions = tuple(parse_version(filter_text(operand)) for operand in operands)
        return lambda element: _compare_any(_version(element), versions, compare)
    if operator in VERSION_RANGE_OPERATORS:
        ranges = tuple(version_range(operator, filter_text(operand)) for operand in operands)
        return lambda element: _in_any_range(_version(element), ranges)
    raise ValueError(f"no evaluator for operator {operator!r}")


def _text(value: Any) -> str:
    return value if type(value) is str else filter_text(value)


def _contains_any(haystack: str, needles: tuple[str, ...]) -> bool:
    return any(needle in haystack for needle in needles)


def _search_any(text: str, patterns: tuple[Any, ...]) -> bool:
    return any(pattern.search(text) is not None for pattern in patterns)


def _compare_any(
    value: Any, operands: tuple[Any, ...], compare: Callable[[Any, Any], bool]
) -> bool:
    return value is not None and any(compare(value, operand) for operand in operands)


def _in_any_range(version: semver.Version | None, ranges: tuple[Any, ...]) -> bool:
    return version is not None and any(r.contains(version) for r in ranges)


def _version(value: Any) -> semver.Version | None:
    text = _text(value)
    return None if len(text) > MAX_VERSION_CHARS else _cached_version(text)


# Release strings repeat across a project's events; parsing each distinct one once keeps the
# semver operators cheap on the hot path.
@lru_cache(maxsize=4096)
def _cached_version(text: str) -> semver.Version | None:
    return parse_version(text)
