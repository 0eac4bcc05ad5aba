"""The order of the job, on one screen: every batch goes decode -> projects -> fingerprint -> issue
-> frames -> suppress -> count and limit -> forward -> decide.

Each stage takes the batch and returns it; an event's outcome travels with its record, so one bad
event never fails its batch. Outages are retried inside the stages; anything else that escapes a
batch is narrowed down to the event that caused it, which alone is dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from schemas.events import DeadLetterReason
from worker.config import ProjectConfig, ProjectConfigCache
from worker.count_and_limit import CountAndLimitStage
from worker.decode import DecodeLimits, decode_batch
from worker.fingerprint import fingerprint_batch
from worker.frames import StackFrameRecorder
from worker.issues import IssueAssigner
from worker.outcomes import Outcome
from worker.records import EventRecord, SourceMessage, in_flight
from worker.spike_emission import SpikeStage
from worker.suppress import SuppressionStage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pipeline:
    limits: DecodeLimits
    project_configs: ProjectConfigCache
    issues: IssueAssigner
    frames: StackFrameRecorder
    suppression: SuppressionStage
    counting: CountAndLimitStage
    spikes: SpikeStage
    # Wall-clock epoch seconds: the current spike bucket and the token buckets' refill read it.
    clock: Callable[[], float] = time.time

    async def process(self, messages: Sequence[SourceMessage]) -> list[EventRecord]:
        """One record per message, in order, each finished with its outcome."""
        try:
            return await self._run(messages)
        except Exception:
            log.exception("a batch of %d events failed; processing them one by one", len(messages))
            return [await self._run_alone(message) for message in messages]

    async def _run(self, messages: Sequence[SourceMessage]) -> list[EventRecord]:
        now = self.clock()
        batch = [EventRecord(source=message) for message in messages]
        batch = decode_batch(batch, self.limits)
        batch, configs = await self._known_projects(batch)
        batch = fingerprint_batch(batch)
        batch = await self.issues.assign(batch)
        batch = await self.frames.record(batch)
        batch = await self.suppression.apply(batch, configs)
        batch, counts = await self.counting.apply(batch, configs, now)
        batch = forward(batch)
        await self.spikes.decide_and_emit(counts, configs, now, batch)
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
        pending = in_flight(batch)
        project_ids = {r.project_id for r in pending}
        await self.project_configs.refresh(project_ids)
        configs = await self.project_configs.configs_for(project_ids)
        for record in pending:
            if record.project_id not in configs:
                record.reject(
                    DeadLetterReason.UNKNOWN_PROJECT, f"project {record.project_id} does not exist"
                )
        return batch, configs


def forward(batch: Sequence[EventRecord]) -> Sequence[EventRecord]:
    """Every event that survived the stages before is forwarded (the sinks send it)."""
    for record in in_flight(batch):
        record.finish(Outcome.FORWARDED)
    return batch
