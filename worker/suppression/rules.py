"""A project's suppression rules, compiled once per config version, and the per-event verdict.

The first matching rule in ``order_key`` order decides. A rule that fails is reported and dropped
from the set, never raised: one bad rule must not fail a batch or lose an event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.property_filters import FilterValidationError, filter_text, validate_filters
from worker.suppression.predicates import Predicate, compile_filters, filter_keys
from worker.suppression.sampling import is_sampled_out

# Bounds on what a failure records in ``disabled_data``: a summary, not the event.
MAX_FAILURE_KEYS = 20
MAX_FAILURE_LIST_ITEMS = 10
MAX_FAILURE_TEXT_CHARS = 200
MAX_FAILURE_MESSAGE_CHARS = 1000


@dataclass(frozen=True)
class RuleSpec:
    """A suppression rule as stored; ``disabled`` is true while its ``disabled_data`` is set."""

    id: uuid.UUID
    filters: dict[str, Any] | None
    order_key: int
    sampling_rate: float
    disabled: bool


@dataclass(frozen=True)
class RuleFailure:
    """Why a rule was disabled; the caller stores ``disabled_data`` on the rule once."""

    rule_id: uuid.UUID
    message: str
    props: dict[str, Any]

    @property
    def disabled_data(self) -> dict[str, Any]:
        return {"message": self.message, "props": self.props}


@dataclass
class Verdict:
    """``rule_id`` is the first matching rule, which decides even when it lets the event through."""

    suppressed: bool
    rule_id: uuid.UUID | None
    failures: list[RuleFailure] = field(default_factory=list)


@dataclass(frozen=True)
class _CompiledRule:
    id: uuid.UUID
    sampling_rate: float
    matches: Predicate
    keys: tuple[str, ...]


class RuleSet:
    """The enabled rules of one project in evaluation order."""

    def __init__(self, rules: Sequence[_CompiledRule], compile_failures: list[RuleFailure]):
        self._rules = tuple(rules)
        self._compile_failures = compile_failures

    @property
    def compile_failures(self) -> list[RuleFailure]:
        return list(self._compile_failures)

    def __len__(self) -> int:
        """The number of rules still enabled."""
        return len(self._rules)

    @property
    def rule_ids(self) -> list[uuid.UUID]:
        """The rules still enabled, in the order they are evaluated."""
        return [rule.id for rule in self._rules]

    def evaluate(self, properties: Mapping[str, Any], event_uuid: uuid.UUID) -> Verdict:
        """Decide one event; ``properties`` must already include the derived keys."""
        failures: list[RuleFailure] = []
        verdict = Verdict(suppressed=False, rule_id=None, failures=failures)
        for rule in self._rules:
            try:
                matched = rule.matches(properties)
            # A user's rule must never stop the worker: whatever it raises disables it instead.
            except Exception as exc:
                failures.append(_runtime_failure(rule, exc, properties))
                continue
            if matched:
                verdict.suppressed = is_sampled_out(event_uuid, rule.sampling_rate)
                verdict.rule_id = rule.id
                break
        if failures:
            failed = {failure.rule_id for failure in failures}
            self._rules = tuple(rule for rule in self._rules if rule.id not in failed)
        return verdict


def compile_rules(rules: Sequence[RuleSpec]) -> RuleSet:
    """Compile a project's rules; invalid ones become ``compile_failures`` instead of raising."""
    compiled: list[_CompiledRule] = []
    failures: list[RuleFailure] = []
    for spec in sorted(rules, key=lambda rule: (rule.order_key, rule.id)):
        if spec.disabled:
            continue
        try:
            filters = validate_filters(spec.filters)
        except FilterValidationError as exc:
            failures.append(RuleFailure(spec.id, f"invalid filters: {exc}", {}))
            continue
        compiled.append(
            _CompiledRule(
                id=spec.id,
                sampling_rate=spec.sampling_rate,
                matches=compile_filters(filters),
                keys=filter_keys(filters),
            )
        )
    return RuleSet(compiled, failures)


def _runtime_failure(
    rule: _CompiledRule, exc: Exception, properties: Mapping[str, Any]
) -> RuleFailure:
    message = f"{type(exc).__name__}: {exc}"[:MAX_FAILURE_MESSAGE_CHARS]
    return RuleFailure(rule.id, message, _props_summary(properties, rule.keys))


def _props_summary(properties: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in keys[:MAX_FAILURE_KEYS]:
        # The mapping may be what failed; the summary must still be written.
        try:
            value = properties.get(key)
            summary[key] = _bounded(value)
        except Exception as exc:
            summary[key] = f"<unreadable: {type(exc).__name__}>"
    return summary


def _bounded(value: Any) -> Any:
    if isinstance(value, list):
        return [_bounded(item) for item in value[:MAX_FAILURE_LIST_ITEMS]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return filter_text(value)[:MAX_FAILURE_TEXT_CHARS]
