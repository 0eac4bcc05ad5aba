"""The suppression stage: the first of a project's rules that matches an event decides it, and the
event is finished as suppressed when that rule samples it out.

The derived ``$exception_*`` keys are computed once per event at most, when a rule reads them.
A rule that fails is skipped and reported (``disabled_rules``); the event is still decided by the
rules after it, never lost.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence

from worker.disabled_rules import DisabledRule, DisabledRuleRecorder
from worker.outcomes import Outcome
from worker.project_config import ProjectConfig
from worker.records import EventRecord, in_flight
from worker.suppression import EventProperties, RuleFailure, RuleSet


class SuppressionStage:
    def __init__(self, disabled_rules: DisabledRuleRecorder) -> None:
        self._disabled_rules = disabled_rules
        # Compile failures belong to a loaded rule set: report each set's once, not every batch.
        self._reported: weakref.WeakSet[RuleSet] = weakref.WeakSet()

    async def apply(
        self, batch: Sequence[EventRecord], configs: Mapping[int, ProjectConfig]
    ) -> Sequence[EventRecord]:
        failed = self._new_compile_failures(configs.values())
        for record in in_flight(batch):
            config = configs[record.project_id]
            rules = config.suppression_rules
            if not rules:
                continue
            verdict = rules.evaluate(event_properties(record), _uuid(record))
            failed += [_disabled(config, failure) for failure in verdict.failures]
            if verdict.suppressed:
                record.finish(Outcome.SUPPRESSED)
        await self._disabled_rules.record(failed)
        return batch

    def _new_compile_failures(self, configs: Iterable[ProjectConfig]) -> list[DisabledRule]:
        failed = []
        for config in configs:
            rules = config.suppression_rules
            if rules in self._reported:
                continue
            self._reported.add(rules)
            failed += [_disabled(config, failure) for failure in rules.compile_failures]
        return failed


def event_properties(record: EventRecord) -> EventProperties:
    """The properties rules filter on: the event's own, with the derived keys laid over them."""
    if record.fingerprint is None:
        raise ValueError("suppression runs after fingerprinting")
    return EventProperties(
        record.properties, record.exceptions, record.fingerprint, record.known_properties.release
    )


def _disabled(config: ProjectConfig, failure: RuleFailure) -> DisabledRule:
    return DisabledRule(
        project_id=config.project_id,
        failure=failure,
        loaded_updated_at=config.rule_versions.get(failure.rule_id),
    )


def _uuid(record: EventRecord) -> uuid.UUID:
    if record.event_uuid is None:
        raise ValueError("the record has not been decoded")
    return record.event_uuid
