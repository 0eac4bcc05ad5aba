"""The Faust app (``faust -A worker.app worker``): the worker's runtime around the consumer loop.

Faust runs the process: its entry point and signals, the web server for Prometheus ``/metrics``,
timers, and the creation of missing topics. It neither consumes nor forwards: batches come straight
from an aiokafka consumer of the worker's own (``worker/consumer.py``) to the pipeline, without a
per-event hop through Faust's streams, their output leaves through an aiokafka producer of the
worker's own a record batch per partition at a time (``worker/producer.py``), and their offsets
are committed only once their effects are durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import faust
import mode
import mode.loop
from aiokafka import AIOKafkaProducer, TopicPartition
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from schemas.settings import get_settings
from worker import metrics
from worker.broker_offsets import BrokerOffsets
from worker.consumer import BatchConsumer, Membership, group_consumer, instance_id
from worker.garbage import BatchGarbageCollector
from worker.producer import BatchProducer
from worker.records import SourceMessage
from worker.runtime import WorkerRuntime
from worker.stall_watchdog import EXIT_STALLED, StallWatchdog, backlog

log = logging.getLogger(__name__)

# uvloop runs the event loop and its sockets in C. Set before any loop exists, so both
# `faust -A worker.app worker` and `spikewatch worker` run on it.
mode.loop.use("uvloop")

settings = get_settings()
BOOTSTRAP_SERVERS = [server.strip() for server in settings.kafka_bootstrap_servers.split(",")]

# aiokafka's own default: above our 1 MB input limit plus enrichment, within the broker's default.
PRODUCER_MAX_REQUEST_BYTES = 1_048_576
# A forwarded event is a few KB, so aiokafka's 16 KB default record batch holds two; a batch of
# 1,000 events would be hundreds of them. Record batches up to the broker's default message limit
# make it a handful.
PRODUCER_MAX_BATCH_BYTES = 1_048_576
OFFSETS_REFRESH_SECONDS = 5.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"
# The exit status of a worker whose consumer loop failed: its supervisor starts it again, and the
# batch that failed is read again from the last commit.
EXIT_CONSUMER_FAILED = 1
# How long a stopping worker waits for its consumer loop to close the database and Redis clients.
SHUTDOWN_WAIT_SECONDS = 10.0


class SpinnerlessWorker(faust.Worker):
    """``faust.Worker`` without its start-up spinner, which at Faust's default level (warn) leaves
    the root logger at DEBUG for the life of the worker: every debug line of aiokafka (one per
    message produced) would then be built into a record and handled, only to be dropped."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


class RuntimeOnly(faust.App.BootStrategy):
    """Faust's services without its consumer, its conductor and its tables: the worker consumes
    with a consumer of its own."""

    enable_kafka_consumer = False


class WorkerApp(faust.App):
    BootStrategy = RuntimeOnly


app = WorkerApp(
    settings.consumer_group,
    broker=[f"kafka://{server}" for server in BOOTSTRAP_SERVERS],
    store="memory://",
    web_port=settings.worker_web_port,
    # The leader topic only serves Faust's table assignment; the worker has no tables.
    topic_disable_leader=True,
    Worker=SpinnerlessWorker,
)


def _topic(name: str) -> faust.TopicT:
    """A topic the worker creates at start when it is missing, with the configured partitions and
    replication (``KAFKA_TOPIC_*``), rather than leave it to the broker's own defaults."""
    config = {}
    if settings.kafka_topic_min_insync_replicas is not None:
        config["min.insync.replicas"] = settings.kafka_topic_min_insync_replicas
    return app.topic(
        name,
        partitions=settings.kafka_topic_partitions,
        replicas=settings.kafka_topic_replication_factor,
        config=config or None,
        internal=True,
    )


# The input is created before subscribing: a worker started before the first event would
# otherwise subscribe to nothing until its next metadata refresh (minutes). The outputs are
# created too, so that their readers (alerting systems on the spike topic) can subscribe before
# the first event, and so that they get the configured replication, not the broker's default.
exception_events = _topic(settings.topic_exception_events)
OUTPUT_TOPICS = [
    _topic(name)
    for name in (
        settings.topic_exception_events_accepted,
        settings.topic_exception_events_dlq,
        settings.topic_spike_events,
    )
]

membership = Membership(
    group=settings.consumer_group,
    session_timeout_seconds=settings.consumer_session_timeout_seconds,
    instance_id=instance_id(settings.worker_instance_id, socket.gethostname()),
)
# What the broker said at the last refresh, per assigned partition: the log end offset and the
# group's committed offset.
_ends: dict[TopicPartition, int] = {}
_committed: dict[TopicPartition, int] = {}
_broker = BrokerOffsets(BOOTSTRAP_SERVERS)
_batches: BatchConsumer | None = None


def _exit(status: int) -> None:
    # Faust's orderly shutdown would wait on what is stuck. Exiting at once loses nothing: no
    # offset is committed before its batch's effects are durable.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(status)


_watchdog = StallWatchdog(
    limit=settings.stall_limit_seconds, give_up=lambda reason: _exit(EXIT_STALLED)
)


# Set once the consumer loop has ended and closed what it used; shutdown waits for it.
_loop_closed = asyncio.Event()


@app.task
async def consume_exception_events() -> None:
    global _batches
    for topic in (exception_events, *OUTPUT_TOPICS):
        await topic.maybe_declare()
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP_SERVERS,
        client_id=f"{membership.instance_id or settings.consumer_group}-producer",
        acks="all",
        max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        max_batch_size=PRODUCER_MAX_BATCH_BYTES,
    )
    await producer.start()
    runtime = WorkerRuntime.create(settings, send=BatchProducer(producer).send)
    garbage = BatchGarbageCollector()

    async def handle(messages: Sequence[SourceMessage]) -> None:
        await runtime.handle(messages)
        garbage.after_batch()

    _batches = BatchConsumer(
        group_consumer(BOOTSTRAP_SERVERS, membership),
        exception_events.get_topic_name(),
        handle,
        max_events=settings.batch_max_events,
        wait_seconds=settings.batch_within_seconds,
    )
    try:
        await _batches.start()
        garbage.start()
        await _batches.run()
    except Exception:
        log.exception("the consumer loop failed; exiting for the supervisor to start it again")
        _exit(EXIT_CONSUMER_FAILED)
    finally:
        await runtime.close()
        await producer.stop()
        _loop_closed.set()


@app.on_before_shutdown.connect
async def stop_consuming(sender: faust.App, **_: Any) -> None:
    """Before Faust stops its producer: the batch in hand finishes, the loop closes what it used."""
    if _batches is not None:
        await _batches.stop()
        await asyncio.wait_for(_loop_closed.wait(), timeout=SHUTDOWN_WAIT_SECONDS)


@app.timer(interval=OFFSETS_REFRESH_SECONDS)
async def refresh_offsets() -> None:
    """The lag gauge, and the stall check: log ends and commits from the broker itself, with
    clients of their own (the consumer may be the part that is stuck)."""
    if _batches is None:
        return
    assigned = sorted(_batches.assignment())
    try:
        ends = await _broker.end_offsets(assigned)
        committed = await _broker.committed_offsets(settings.consumer_group, assigned)
    except Exception as exc:
        # The broker away: the last figures stand, and so the stall check still runs on them.
        log.debug("offsets not refreshed: %r", exc)
    else:
        _ends.clear()
        _ends.update(ends)
        _committed.clear()
        _committed.update(committed)
    metrics.CONSUMER_LAG.clear()
    for tp in assigned:
        end = _ends.get(tp)
        next_offset = await _batches.position(tp)
        if end is not None and next_offset is not None:
            metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(end - next_offset, 0)
            )
    if settings.stall_limit_seconds:
        waiting = backlog(_ends, _committed, assigned)
        metrics.EVENTS_WAITING.set(waiting)
        stalled_for = _watchdog.check(waiting, sum(_committed.get(tp, 0) for tp in assigned))
        metrics.STALL_SECONDS.set(stalled_for)


@app.page("/metrics")
class MetricsView(View):
    async def get(self, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type; the text format is ASCII anyway.
        return self.bytes(generate_latest(), content_type=PROMETHEUS_CONTENT_TYPE)
