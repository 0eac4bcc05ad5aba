"""The order of the job, on one screen: every batch goes decode -> projects -> fingerprint -> issue
-> frames -> suppress -> count and limit -> forward -> decide.

Each stage takes the batch and returns it; an event's outcome travels with its record, so one bad
event never fails its batch. Outages are retried inside the stages; anything else that escapes a
batch is narrowed down to the event that caused it, which alone is dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from schemas.events import DeadLetterReason
from worker.config import ProjectConfig, ProjectConfigCache
from worker.decode import DecodeLimits, decode_batch
from worker.fingerprint import fingerprint_batch
from worker.frames import StackFrameRecorder
from worker.issues import IssueAssigner
from worker.outcomes import Outcome
from worker.records import EventRecord, SourceMessage, in_flight

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pipeline:
    limits: DecodeLimits
    project_configs: ProjectConfigCache
    issues: IssueAssigner
    frames: StackFrameRecorder

    async def process(self, messages: Sequence[SourceMessage]) -> list[EventRecord]:
        """One record per message, in order, each finished with its outcome."""
        try:
            return await self._run(messages)
        except Exception:
            log.exception("a batch of %d events failed; processing them one by one", len(messages))
            return [await self._run_alone(message) for message in messages]

    async def _run(self, messages: Sequence[SourceMessage]) -> list[EventRecord]:
        batch = [EventRecord(source=message) for message in messages]
        batch = decode_batch(batch, self.limits)
        batch, configs = await self._known_projects(batch)
        batch = fingerprint_batch(batch)
        batch = await self.issues.assign(batch)
        batch = await self.frames.record(batch)
        batch = suppress(batch, configs)
        batch = count_and_limit(batch, configs)
        batch = forward(batch)
        decide_spikes(batch, configs)
        return list(batch)

    async def _run_alone(self, message: SourceMessage) -> EventRecord:
        try:
            [record] = await self._run([message])
        except Exception as exc:
            log.exception("offset %d of partition %d failed", message.offset, message.partition)
            record = EventRecord(source=message)
            record.reject(DeadLetterReason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
        return record

    async def _known_projects(
        self, batch: Sequence[EventRecord]
    ) -> tuple[Sequence[EventRecord], Mapping[int, ProjectConfig]]:
        await self.project_configs.refresh()
        pending = in_flight(batch)
        configs = await self.project_configs.configs_for({r.project_id for r in pending})
        for record in pending:
            if record.project_id not in configs:
                record.reject(
                    DeadLetterReason.UNKNOWN_PROJECT, f"project {record.project_id} does not exist"
                )
        return batch, configs


def suppress(
    batch: Sequence[EventRecord], configs: Mapping[int, ProjectConfig]
) -> Sequence[EventRecord]:
    """Suppression rules (issue 5) finish matching events as suppressed; until they are wired in,
    no event is suppressed."""
    return batch


def count_and_limit(
    batch: Sequence[EventRecord], configs: Mapping[int, ProjectConfig]
) -> Sequence[EventRecord]:
    """Spike counting and rate limits (issue 6) count every event here and finish those over a
    limit as rate-limited; until they are wired in, nothing is counted or limited."""
    return batch


def forward(batch: Sequence[EventRecord]) -> Sequence[EventRecord]:
    """Every event that survived the stages before is forwarded (the sinks send it)."""
    for record in in_flight(batch):
        record.finish(Outcome.FORWARDED)
    return batch


def decide_spikes(batch: Sequence[EventRecord], configs: Mapping[int, ProjectConfig]) -> None:
    """The spike decision (issue 6) compares the issues counted in this batch with their
    baselines; until counting is wired in there is nothing to decide."""
