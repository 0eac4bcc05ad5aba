"""The worker's long-lived parts (database engine, Redis client, caches, pipeline, sink), built from
the settings, and the handling of one batch from consumed messages to durable effects.

Knows nothing of Faust: the app hands it plain messages and a send function, so Faust stays
confined to ``worker/app.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.db import make_engine
from schemas.settings import Settings
from worker import metrics
from worker.config import ProjectConfigCache
from worker.decode import DecodeLimits
from worker.frames import StackFrameRecorder
from worker.issues import IssueAssigner
from worker.pipeline import Pipeline
from worker.records import EventRecord, SourceMessage
from worker.sinks import KafkaSink, OutputTopics, SendFunction, output_messages

# Short Redis timeouts: a Redis outage must cost a batch a moment (fail open), not stall it.
REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(slots=True)
class WorkerRuntime:
    engine: AsyncEngine
    redis: redis.asyncio.Redis
    pipeline: Pipeline
    sink: KafkaSink
    topics: OutputTopics

    @classmethod
    def create(cls, settings: Settings, send: SendFunction) -> WorkerRuntime:
        engine = make_engine(settings.database_url)
        redis_client = redis.asyncio.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        pipeline = Pipeline(
            limits=DecodeLimits.from_settings(settings),
            project_configs=ProjectConfigCache(engine, redis_client),
            issues=IssueAssigner(engine, cache_size=settings.issue_cache_size),
            frames=StackFrameRecorder(engine, cache_size=settings.frame_cache_size),
        )
        topics = OutputTopics(
            accepted=settings.topic_exception_events_accepted,
            dead_letter=settings.topic_exception_events_dlq,
        )
        return cls(engine, redis_client, pipeline, KafkaSink(send), topics)

    async def handle(self, messages: Sequence[SourceMessage]) -> list[EventRecord]:
        """Process a batch and return once all its effects are durable: only then may its offsets
        be committed."""
        started = time.perf_counter()
        records = await self.pipeline.process(messages)
        await self.sink.deliver(output_messages(records, self.topics))
        metrics.observe_batch(records, time.perf_counter() - started)
        return records

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
