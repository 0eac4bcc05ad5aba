"""The grammar of suppression-rule filters: what a property-group filter may contain, and how its
operands (texts, numbers, RE2 regexes, semver versions and ranges) are read. The API validates
user input with it and the worker compiles from its output. It never evaluates a filter on an event.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import re2
import semver

VALUELESS_OPERATORS = frozenset({"is_set", "is_not_set"})
NUMERIC_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
REGEX_OPERATORS = frozenset({"regex", "not_regex"})
VERSION_OPERATORS = frozenset(
    {"semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte"}
)
VERSION_RANGE_OPERATORS = frozenset({"semver_tilde", "semver_caret", "semver_wildcard"})
OPERATORS = (
    frozenset({"exact", "is_not", "icontains", "not_icontains"})
    | VALUELESS_OPERATORS
    | NUMERIC_OPERATORS
    | REGEX_OPERATORS
    | VERSION_OPERATORS
    | VERSION_RANGE_OPERATORS
)
DERIVED_KEYS = frozenset(
    {
        "$exception_types",
        "$exception_values",
        "$exception_sources",
        "$exception_functions",
        "$exception_handled",
        "$exception_fingerprint",
        "$exception_releases",
    }
)
GROUP_TYPES = frozenset({"AND", "OR"})

# Bounds on the work one rule can cost the worker per event, and on what a request may store.
MAX_NESTING_DEPTH = 20
MAX_FILTER_COUNT = 1000
MAX_REGEX_BYTES = 10_000
# RE2 runs in time linear in the text, but the factor grows with the compiled program: ``\\w{999}``
# written 80 times is a 560-byte pattern that takes about a minute over a 100 kB value. So a rule's
# regexes together may compile to at most this many RE2 instructions (about 25 ms over 100 kB of
# adversarial text for the costliest shapes; an alternation of hundreds of words stays far below).
MAX_RULE_REGEX_INSTRUCTIONS = 5_000


class FilterValidationError(ValueError):
    """A filter the grammar rejects; ``attr`` is the path of the offending part."""

    def __init__(self, message: str, attr: str) -> None:
        super().__init__(f"{attr}: {message}")
        self.message = message
        self.attr = attr


def validate_filters(filters: object) -> dict[str, Any] | None:
    """Check a rule's ``filters`` and return it normalised; None means "match every event".

    Normalising upper-cases group types, defaults a missing group type to AND, a missing operator
    to ``exact`` and a missing property type to ``event``. A value stays as sent (scalar or list);
    keys the grammar does not know (``label`` from the UI, say) are kept for the round trip.
    """
    if filters is None or filters == {}:
        return None
    if not isinstance(filters, dict):
        raise FilterValidationError("must be an object with 'type' and 'values'", "filters")
    if "key" in filters:
        raise FilterValidationError(
            "must be a group {'type': 'AND'|'OR', 'values': [...]}, not a property filter",
            "filters",
        )
    if "type" not in filters and "values" not in filters:
        raise FilterValidationError(
            "must be a group {'type': 'AND'|'OR', 'values': [...]}", "filters"
        )
    return _Validator().group(filters, "filters", depth=1)


def is_group(node: dict[str, Any]) -> bool:
    """Whether a node of a filter tree is a group (else it is a property filter)."""
    return "values" in node or str(node.get("type", "")).upper() in GROUP_TYPES


class _Validator:
    def __init__(self) -> None:
        self.count = 0
        self.regex_instructions = 0

    def node(self, node: object, attr: str, depth: int) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise FilterValidationError("must be a group or a property filter object", attr)
        if is_group(node):
            return self.group(node, attr, depth)
        return self.property_filter(node, attr)

    def group(self, group: dict[str, Any], attr: str, depth: int) -> dict[str, Any]:
        self._count(attr)
        if depth > MAX_NESTING_DEPTH:
            raise FilterValidationError(f"groups are nested deeper than {MAX_NESTING_DEPTH}", attr)
        group_type = group.get("type", "AND")
        if not isinstance(group_type, str) or group_type.upper() not in GROUP_TYPES:
            raise FilterValidationError(
                f"group type must be 'AND' or 'OR', got {group_type!r}", f"{attr}.type"
            )
        values = group.get("values", [])
        if not isinstance(values, list):
            raise FilterValidationError("must be a list", f"{attr}.values")
        return {
            **group,
            "type": group_type.upper(),
            "values": [
                self.node(child, f"{attr}.values.{index}", depth + 1)
                for index, child in enumerate(values)
            ],
        }

    def property_filter(self, prop: dict[str, Any], attr: str) -> dict[str, Any]:
        self._count(attr)
        key = prop.get("key")
        if not isinstance(key, str) or not key:
            raise FilterValidationError("a property filter needs a non-empty string key", attr)
        filter_type = prop.get("type", "event")
        if not isinstance(filter_type, str) or not filter_type:
            raise FilterValidationError("must be a non-empty string", f"{attr}.type")
        operator = prop.get("operator", "exact")
        if not isinstance(operator, str) or operator not in OPERATORS:
            raise FilterValidationError(
                f"unknown operator {operator!r}; expected one of {', '.join(sorted(OPERATORS))}",
                f"{attr}.operator",
            )
        if operator not in VALUELESS_OPERATORS:
            _check_operands(operator, prop.get("value"), f"{attr}.value")
        if operator in REGEX_OPERATORS:
            self._charge_regex_cost(prop["value"], f"{attr}.value")
        return {**prop, "key": key, "type": filter_type, "operator": operator}

    def _charge_regex_cost(self, value: object, attr: str) -> None:
        listed = isinstance(value, list)
        for index, operand in enumerate(operand_list(value)):
            self.regex_instructions += compile_regex(filter_text(operand)).programsize
            if self.regex_instructions > MAX_RULE_REGEX_INSTRUCTIONS:
                raise FilterValidationError(
                    f"the rule's regexes compile to more than {MAX_RULE_REGEX_INSTRUCTIONS} RE2 "
                    "instructions; simplify them (large counted repetitions such as \\w{999} "
                    "are the usual cause)",
                    f"{attr}.{index}" if listed else attr,
                )

    def _count(self, attr: str) -> None:
        self.count += 1
        if self.count > MAX_FILTER_COUNT:
            raise FilterValidationError(
                f"more than {MAX_FILTER_COUNT} filters and groups in one rule", attr
            )


def operand_list(value: object) -> list[Any]:
    """A filter's ``value`` as the list of alternatives it means (a scalar is a list of one)."""
    return value if isinstance(value, list) else [value]


def _check_operands(operator: str, value: object, attr: str) -> None:
    if value is None or value == []:
        raise FilterValidationError(f"operator {operator!r} needs a value", attr)
    listed = isinstance(value, list)
    for index, operand in enumerate(operand_list(value)):
        operand_attr = f"{attr}.{index}" if listed else attr
        if operand is None or isinstance(operand, dict | list):
            raise FilterValidationError("must be a string, a number or a boolean", operand_attr)
        try:
            _parse_operand(operator, operand)
        except ValueError as exc:
            raise FilterValidationError(str(exc), operand_attr) from None


def _parse_operand(operator: str, operand: object) -> object:
    if operator in REGEX_OPERATORS:
        return compile_regex(filter_text(operand))
    if operator in NUMERIC_OPERATORS:
        number = filter_number(operand)
        if number is None:
            raise ValueError(f"operator {operator!r} needs a number, got {operand!r}")
        return number
    if operator in VERSION_OPERATORS:
        version = parse_version(filter_text(operand))
        if version is None:
            raise ValueError(f"{operand!r} is not a version like 1.2.3")
        return version
    if operator in VERSION_RANGE_OPERATORS:
        return version_range(operator, filter_text(operand))
    return operand


def filter_text(value: object) -> str:
    """The text a property value or operand compares as, the way the reference stores JSON.

    Booleans are ``true``/``false`` and integral numbers drop their fraction, so the property
    ``True`` equals the operand ``"true"`` and ``1.0`` equals ``"1"``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def filter_number(value: object) -> float | None:
    """The number a value compares as for gt/gte/lt/lte, or None when it is not a finite number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


_REGEX_OPTIONS = re2.Options()
_REGEX_OPTIONS.log_errors = False
# Filters only ask "does it match"; skipping submatch tracking keeps RE2 on its fastest path.
_REGEX_OPTIONS.never_capture = True


def compile_regex(pattern: str) -> Any:
    """Compile a user's pattern with RE2, which rejects what cannot run in linear time."""
    if len(pattern.encode()) > MAX_REGEX_BYTES:
        raise ValueError(f"regex is longer than {MAX_REGEX_BYTES} bytes")
    try:
        return re2.compile(pattern, _REGEX_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "unknown error"
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(f"invalid regex: {reason}") from None


_VERSION = re.compile(
    r"[vV]?(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?P<rest>[-+][0-9A-Za-z.+-]*)?"
)


def _version_parts(text: str) -> tuple[semver.Version, int] | None:
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        return None
    parts = [match["major"], match["minor"] or "0", match["patch"] or "0"]
    given = 1 + (match["minor"] is not None) + (match["patch"] is not None)
    try:
        return semver.Version.parse(".".join(parts) + (match["rest"] or "")), given
    except ValueError:
        return None


def parse_version(text: str) -> semver.Version | None:
    """Read a release version; a leading ``v`` is dropped and a missing minor or patch is 0.

    So ``v1.2`` reads as ``1.2.0``. Returns None for anything semver cannot parse.
    """
    parts = _version_parts(text)
    return None if parts is None else parts[0]


@dataclass(frozen=True)
class VersionRange:
    """Versions at or above ``lowest`` whose (major, minor, patch) is below ``below``.

    Bounding the upper end on the release triple keeps pre-releases of the excluded version out,
    as npm does (``~1.2.3`` does not match ``1.3.0-rc.1``).
    """

    lowest: semver.Version
    below: tuple[int, int, int]

    def contains(self, version: semver.Version) -> bool:
        return version >= self.lowest and (version.major, version.minor, version.patch) < self.below


def version_range(operator: str, operand: str) -> VersionRange:
    """The npm-style range of ``semver_tilde``, ``semver_caret`` or ``semver_wildcard``.

    ``~1.2.3`` is >=1.2.3 <1.3.0 (``~1`` is <2.0.0); ``^1.2.3`` is >=1.2.3 <2.0.0, ``^0.2.3`` is
    <0.3.0 and ``^0.0.3`` is <0.0.4; ``1.2.*`` (or ``1.2.x``, or ``1.2``) is >=1.2.0 <1.3.0 and
    ``1.*`` is >=1.0.0 <2.0.0. The ``~``/``^`` prefix is optional.
    """
    text = operand.strip()
    if operator == "semver_wildcard":
        text = re.sub(r"(\.[*xX])+$", "", text)
    elif text[:1] in ("~", "^"):
        text = text[1:]
    parts = _version_parts(text)
    if parts is None:
        raise ValueError(f"{operand!r} is not a version range for {operator!r}")
    lowest, given = parts
    major, minor, patch = lowest.major, lowest.minor, lowest.patch
    if operator == "semver_tilde":
        below = (major + 1, 0, 0) if given == 1 else (major, minor + 1, 0)
    elif operator == "semver_caret":
        below = _caret_bound(major, minor, patch, given)
    else:
        below = ((major + 1, 0, 0), (major, minor + 1, 0), (major, minor, patch + 1))[given - 1]
    return VersionRange(lowest=lowest, below=below)


def _caret_bound(major: int, minor: int, patch: int, given: int) -> tuple[int, int, int]:
    # npm's caret allows changes that do not modify the left-most non-zero part that was given.
    if major > 0 or given == 1:
        return (major + 1, 0, 0)
    if minor > 0 or given == 2:
        return (0, minor + 1, 0)
    return (0, 0, patch + 1)
