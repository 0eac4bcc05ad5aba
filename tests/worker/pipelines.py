"""Pipelines for the tests that run the stages in-process on the real database and Redis: clocks
the test moves by hand, and a send function that keeps the spike messages instead of producing
them (the Kafka side of spikes is covered by the end-to-end tests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import SpikeEventMessage
from schemas.redis_client import RedisClient
from worker.config import ProjectConfigCache
from worker.count_and_limit import CountAndLimitStage
from worker.decode import DecodeLimits
from worker.disabled_rules import DisabledRuleRecorder
from worker.frames import StackFrameRecorder
from worker.issues import IssueAssigner
from worker.pipeline import Pipeline
from worker.records import SourceMessage
from worker.redis_stage import RedisStage
from worker.sinks import KafkaSink, OutgoingMessage, Queued
from worker.spike_emission import SpikeStage
from worker.spike_store import SpikeStore
from worker.suppress import SuppressionStage

LIMITS = DecodeLimits(max_message_bytes=1_000_000, max_exceptions=50, max_frames_per_exception=500)
INPUT_TOPIC = "in"
SPIKE_TOPIC = "spikes"
BUCKET_SECONDS = 300
# A wall-clock instant early in a bucket, so that a test's few seconds never cross into the next.
BUCKET_START = 1_800_000_000
NOW = BUCKET_START + 10.0


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class KeptMessages:
    """A send function that keeps every message and acknowledges it at once, after refusing the
    first ``refusals`` messages as a broker refuses one it can never take."""

    def __init__(self, refusals: int = 0) -> None:
        self.messages: list[OutgoingMessage] = []
        self._refusals = refusals

    async def __call__(self, messages: Sequence[OutgoingMessage]) -> list[Queued]:
        queued: list[Queued] = []
        for message in messages:
            acknowledged = asyncio.get_running_loop().create_future()
            if self._refusals:
                self._refusals -= 1
                acknowledged.set_exception(ValueError("the broker refused the message"))
            else:
                self.messages.append(message)
                acknowledged.set_result(None)
            queued.append(([message], acknowledged))
        return queued

    def spikes(self) -> list[SpikeEventMessage]:
        return [
            msgspec.json.decode(message.value, type=SpikeEventMessage)
            for message in self.messages
            if message.topic == SPIKE_TOPIC
        ]


def build_pipeline(
    engine: AsyncEngine,
    redis_client: RedisClient,
    *,
    config_clock: FakeClock | None = None,
    wall_clock: FakeClock | None = None,
    sent: KeptMessages | None = None,
) -> Pipeline:
    return Pipeline(
        limits=LIMITS,
        project_configs=ProjectConfigCache(engine, redis_client, clock=config_clock or FakeClock()),
        issues=IssueAssigner(engine, cache_size=100),
        frames=StackFrameRecorder(engine, cache_size=100),
        suppression=SuppressionStage(DisabledRuleRecorder(engine)),
        counting=CountAndLimitStage(
            RedisStage(redis_client, topic=INPUT_TOPIC, bucket_size_seconds=BUCKET_SECONDS)
        ),
        spikes=SpikeStage(
            redis_client, SpikeStore(engine), KafkaSink(sent or KeptMessages()), topic=SPIKE_TOPIC
        ),
        clock=wall_clock or FakeClock(NOW),
    )


def messages(*payloads: bytes, first_offset: int = 0, partition: int = 0) -> list[SourceMessage]:
    return [
        SourceMessage(INPUT_TOPIC, partition, first_offset + n, None, payload)
        for n, payload in enumerate(payloads)
    ]


def new_project_ids(count: int) -> list[int]:
    """Project ids no other test uses: Redis is shared, and its keys are per project."""
    base = 10**9 + uuid.uuid4().int % 10**9
    return [base + n for n in range(count)]
