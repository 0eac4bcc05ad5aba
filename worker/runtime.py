"""The worker's long-lived parts (database engine, Redis client, caches, pipeline, sink), built from
the settings, and the handling of one batch from consumed messages to durable effects.

Knows nothing of Faust: the app hands it plain messages and a send function, so Faust stays
confined to ``worker/app.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.db import make_engine
from schemas.redis_client import RedisClient, make_redis
from schemas.settings import Settings
from worker import metrics
from worker.config import ProjectConfigCache
from worker.count_and_limit import CountAndLimitStage
from worker.decode import DecodeLimits
from worker.disabled_rules import DisabledRuleRecorder
from worker.frames import StackFrameRecorder
from worker.issues import IssueAssigner
from worker.pipeline import Pipeline
from worker.records import EventRecord, SourceMessage
from worker.redis_stage import RedisStage
from worker.sinks import KafkaSink, OutputTopics, SendFunction, output_messages
from worker.spike_emission import SpikeStage
from worker.spike_store import SpikeStore
from worker.suppress import SuppressionStage

# Short Redis timeouts: a Redis outage must cost a batch a moment (fail open), not stall it.
REDIS_TIMEOUT_SECONDS = 1.0
# One immediate retry reconnects a pooled connection that Redis closed (a restart); redis-py's
# default of ten retries with backoff would stall every batch of an outage for seconds.
REDIS_RETRIES = 1


@dataclass(slots=True)
class WorkerRuntime:
    engine: AsyncEngine
    redis: RedisClient
    pipeline: Pipeline
    sink: KafkaSink
    topics: OutputTopics

    @classmethod
    def create(
        cls, settings: Settings, send: SendFunction, *, clock: Callable[[], float] = time.time
    ) -> WorkerRuntime:
        engine = make_engine(settings.database_url)
        redis_client = connect_redis(settings.redis_url, cluster=settings.redis_cluster)
        sink = KafkaSink(send)
        pipeline = build_pipeline(settings, engine, redis_client, sink, clock=clock)
        topics = OutputTopics(
            accepted=settings.topic_exception_events_accepted,
            dead_letter=settings.topic_exception_events_dlq,
        )
        return cls(engine, redis_client, pipeline, sink, topics)

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


def connect_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """A client that gives up on an unavailable Redis node within about a second."""
    return make_redis(
        url, cluster=cluster, timeout_seconds=REDIS_TIMEOUT_SECONDS, retries=REDIS_RETRIES
    )


def build_pipeline(
    settings: Settings,
    engine: AsyncEngine,
    redis_client: RedisClient,
    sink: KafkaSink,
    *,
    clock: Callable[[], float] = time.time,
) -> Pipeline:
    """Every stage of the pipeline, on one database, one Redis and one sink (for spikes)."""
    redis_stage = RedisStage(
        redis_client,
        topic=settings.topic_exception_events,
        bucket_size_seconds=settings.bucket_size_seconds,
        history_buckets=settings.history_buckets,
    )
    return Pipeline(
        limits=DecodeLimits.from_settings(settings),
        project_configs=ProjectConfigCache(engine, redis_client),
        issues=IssueAssigner(engine, cache_size=settings.issue_cache_size),
        frames=StackFrameRecorder(engine, cache_size=settings.frame_cache_size),
        suppression=SuppressionStage(DisabledRuleRecorder(engine)),
        counting=CountAndLimitStage(redis_stage),
        spikes=SpikeStage(
            redis_client, SpikeStore(engine), sink, topic=settings.topic_spike_events
        ),
        clock=clock,
    )
