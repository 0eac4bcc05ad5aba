"""Records why the worker stopped running a suppression rule: its ``disabled_data``, written once.

Written only while the rule is as the worker loaded it: still enabled and not updated since (an
API update clears ``disabled_data`` and re-enables the rule, and must win over a failure seen on
the version before it). Never raises into the batch: a failure it cannot record is logged, and
the rule stays skipped in memory until the project's config is reloaded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.tables import SuppressionRule
from worker import metrics
from worker.retry import retry_infrastructure
from worker.suppression import RuleFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DisabledRule:
    """A rule that failed, and the ``updated_at`` of the version of it that failed."""

    project_id: int
    failure: RuleFailure
    loaded_updated_at: datetime | None


class DisabledRuleRecorder:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, disabled: Sequence[DisabledRule]) -> set[uuid.UUID]:
        """Write each rule's ``disabled_data`` unless it is already set or the rule changed since
        it was loaded; return the ids of the rules written."""
        unique = list({rule.failure.rule_id: rule for rule in disabled}.values())
        if not unique:
            return set()
        try:
            written = await retry_infrastructure(lambda: self._write(unique), dependency="database")
        # Losing the record of a failure costs a retry of the rule after the next reload; failing
        # the batch would cost its events.
        except Exception:
            log.exception("could not record %d disabled suppression rules", len(unique))
            return set()
        for rule in unique:
            if rule.failure.rule_id in written:
                log.warning(
                    "disabled suppression rule %s of project %d: %s",
                    rule.failure.rule_id,
                    rule.project_id,
                    rule.failure.message,
                )
        metrics.SUPPRESSION_RULES_DISABLED.inc(len(written))
        return written

    async def _write(self, disabled: Sequence[DisabledRule]) -> set[uuid.UUID]:
        by_id = {rule.failure.rule_id: rule for rule in disabled}
        async with self._engine.begin() as connection:
            # Locked (on PostgreSQL) so that an API update cannot slip between check and write.
            rule = SuppressionRule
            current = await connection.execute(
                select(rule.id, rule.disabled_data, rule.updated_at)
                .where(rule.id.in_(sorted(by_id)))
                .with_for_update()
            )
            writable = [
                row.id
                for row in current
                if row.disabled_data is None and row.updated_at == by_id[row.id].loaded_updated_at
            ]
            for rule_id in writable:
                await connection.execute(
                    update(SuppressionRule)
                    .where(SuppressionRule.id == rule_id)
                    # updated_at stays the operator's last change, not the worker's.
                    .values(
                        disabled_data=by_id[rule_id].failure.disabled_data,
                        updated_at=SuppressionRule.updated_at,
                    )
                )
        return set(writable)
