"""The Faust app (``faust -A worker.app worker``): one thin agent from batches to the pipeline.

The agent acks a batch only after ``WorkerRuntime.handle`` made its effects durable, so Faust never
commits an offset past an event still being processed; it holds no logic of its own. Also serves
Prometheus ``/metrics`` on the worker's web port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import faust
import mode
import mode.loop
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from schemas.settings import get_settings
from worker import metrics
from worker.batch_overlap import process_overlapped
from worker.broker_offsets import BrokerOffsets
from worker.garbage import BatchGarbageCollector
from worker.partition_order import PartitionOrder
from worker.records import SourceMessage
from worker.runtime import WorkerRuntime
from worker.sinks import OutgoingMessage
from worker.stall_watchdog import EXIT_STALLED, StallWatchdog, backlog

log = logging.getLogger(__name__)

# uvloop runs the event loop and its sockets in C: Faust's per-message scheduling (a task and a
# wait for every consumed message) costs about a third less. Set before any loop exists, so both
# `faust -A worker.app worker` and `spikewatch worker` run on it.
mode.loop.use("uvloop")

settings = get_settings()

# aiokafka's own default: above our 1 MB input limit plus enrichment, within the broker's default.
PRODUCER_MAX_REQUEST_BYTES = 1_048_576
# A forwarded event is a few KB, so aiokafka's 16 KB default batch holds two; with one batch per
# partition in a request and one request in flight per broker, a batch of 1,000 events would
# wait for hundreds of round trips. Batches up to the broker's default message limit make it a
# handful.
PRODUCER_MAX_BATCH_BYTES = 1_048_576
# Faust feeds its streams on the event loop the pipeline runs on, so while a batch is processed
# only what the consumer thread already fetched can be ready next. At the 1 MiB default a
# partition holds a couple of hundred events of a few KB, and each batch then waits for fetches;
# 4 MiB a partition keeps a batch or two ahead (memory: 4 MiB for each assigned partition, and
# the fetched events once decoded, several times that).
CONSUMER_MAX_FETCH_BYTES = 4 * 1_048_576
OFFSETS_REFRESH_SECONDS = 5.0
# A fetch position is asked of Faust's consumer thread, which a stuck consumer never answers.
POSITION_TIMEOUT_SECONDS = 5.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"
# Partitions of a topic the worker finds missing and creates (a deployment normally provisions
# its topics); for the input topic, the most worker processes that can share the load.
CREATED_TOPIC_PARTITIONS = 4


class SpinnerlessWorker(faust.Worker):
    """``faust.Worker`` without its start-up spinner, which at Faust's default level (warn) leaves
    the root logger at DEBUG for the life of the worker: every debug line of aiokafka (one per
    message produced) would then be built into a record and handled, only to be dropped."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


app = faust.App(
    settings.consumer_group,
    broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
    store="memory://",
    web_port=settings.worker_web_port,
    key_serializer="raw",
    value_serializer="raw",
    # A new consumer group starts from the oldest event still in the topic, never skips to the end.
    consumer_auto_offset_reset="earliest",
    # A crashed agent would leave its unacked batch behind while the stream moves on; crash the
    # worker instead, so the batch is consumed again after the restart.
    agent_supervisor=mode.CrashingSupervisor,
    # Faust would otherwise hold a shutdown or rebalance until the batch in hand is acked, which
    # during an outage is never: the batch is left unacked instead and redelivered (at least once).
    stream_wait_empty=False,
    producer_max_request_size=PRODUCER_MAX_REQUEST_BYTES,
    producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
    consumer_max_fetch_size=CONSUMER_MAX_FETCH_BYTES,
    # The leader topic only serves Faust's table assignment; the worker has no tables.
    topic_disable_leader=True,
    Worker=SpinnerlessWorker,
)

# Declared so that Faust creates it when missing, before subscribing: a worker started before
# the first event would otherwise subscribe to nothing until its next metadata refresh (minutes).
exception_events = app.topic(
    settings.topic_exception_events, partitions=CREATED_TOPIC_PARTITIONS, internal=True
)
# Created at start too, so that alerting systems can subscribe before the first spike.
spike_events = app.topic(
    settings.topic_spike_events, partitions=CREATED_TOPIC_PARTITIONS, internal=True
)

# Offset after the last event processed, per partition: the consumer lag's reference point.
_next_offsets: dict[TP, int] = {}
_partition_order: PartitionOrder[TP] = PartitionOrder(_next_offsets)
# What the broker said at the last refresh, per assigned partition: the log end offset and the
# group's committed offset; and the fetch position where this worker processed nothing yet.
_ends: dict[TP, int] = {}
_committed: dict[TP, int] = {}
_positions: dict[TP, int] = {}
_broker = BrokerOffsets([server.strip() for server in settings.kafka_bootstrap_servers.split(",")])


def _exit_stalled(reason: str) -> None:
    # Faust's orderly shutdown would wait on the stuck consumer. Exiting at once loses nothing:
    # no offset is committed before its batch's effects are durable.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_STALLED)


_watchdog = StallWatchdog(limit=settings.stall_limit_seconds, give_up=_exit_stalled)


@app.agent(exception_events, concurrency=1)
async def process_exception_events(stream: faust.StreamT[bytes]) -> None:
    runtime = WorkerRuntime.create(settings, send=_produce)
    garbage = BatchGarbageCollector()
    garbage.start()

    async def process(batch: Sequence[faust.types.EventT]) -> None:
        admission = _partition_order.admit(batch, _position)
        if admission.read_again:
            for tp, offset in admission.read_again.items():
                log.warning("%s lost queued events; reading again from %d", tp, offset)
            # seek_wait, not seek: it runs in the consumer's own thread and event loop and waits
            # for the new position. Faust's seek() calls aiokafka from this thread, and after it
            # a partition was seen to stay unfetched for minutes (until a broker restart).
            await app.consumer.seek_wait(dict(admission.read_again))
        events = admission.ready
        if events:
            await runtime.handle([_source_message(event.message) for event in events])
        for event in events:
            await stream.ack(event)
            _next_offsets[event.message.tp] = event.message.offset + 1
        garbage.after_batch()

    try:
        # Not take(): it acks a batch when its generator closes, even if the body raised or was
        # cancelled mid-batch. Here an event is acked only once its effects are durable.
        batches = stream.noack_take(settings.batch_max_events, within=settings.batch_within_seconds)
        await process_overlapped(batches, process)
    finally:
        await runtime.close()


@app.on_partitions_assigned.connect
async def track_assignment(sender: faust.App, assigned: set[TP], **_: Any) -> None:
    _partition_order.on_assigned(assigned)


@app.task
async def declare_spike_topic() -> None:
    await spike_events.maybe_declare()


async def _produce(message: OutgoingMessage) -> Any:
    return await app.producer.send(
        message.topic, message.key, message.value, partition=None, timestamp=None, headers=None
    )


def _position(event: faust.types.EventT) -> tuple[TP, int]:
    return event.message.tp, event.message.offset


def _source_message(message: faust.types.Message) -> SourceMessage:
    return SourceMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        # A null value (a tombstone) would crash decode and the DLQ alike, batch after batch;
        # as an empty message it is dead-lettered like any other invalid input.
        value=message.value if message.value is not None else b"",
    )


@app.timer(interval=OFFSETS_REFRESH_SECONDS)
async def refresh_offsets() -> None:
    """The lag gauge, and the stall check: log ends and commits from the broker itself (never
    through Faust's consumer, which may be the part that is stuck), positions from the agent."""
    topic = exception_events.get_topic_name()
    try:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == topic]
    except Exception as exc:  # not started yet
        log.debug("assignment not read: %r", exc)
        return
    try:
        ends = await _broker.end_offsets(assigned)
        committed = await _broker.committed_offsets(app.conf.id, assigned)
    except Exception as exc:
        # The broker away: the last figures stand, and so the stall check still runs on them.
        log.debug("offsets not refreshed: %r", exc)
    else:
        _ends.clear()
        _ends.update(ends)
        _committed.clear()
        _committed.update(committed)
    await _read_positions(tp for tp in assigned if tp not in _next_offsets)
    metrics.CONSUMER_LAG.clear()
    for tp in assigned:
        end, next_offset = _ends.get(tp), _next_offsets.get(tp, _positions.get(tp))
        if end is not None and next_offset is not None:
            metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(end - next_offset, 0)
            )
    if settings.stall_limit_seconds:
        waiting = backlog(_ends, _committed, assigned)
        metrics.EVENTS_WAITING.set(waiting)
        stalled_for = _watchdog.check(waiting, sum(_committed.get(tp, 0) for tp in assigned))
        metrics.STALL_SECONDS.set(stalled_for)


async def _read_positions(partitions: Iterable[TP]) -> None:
    """Before this worker processed anything of a partition, its fetch position stands in."""
    for tp in partitions:
        try:
            _positions[tp] = await asyncio.wait_for(
                app.consumer.position(tp), timeout=POSITION_TIMEOUT_SECONDS
            )
        except Exception as exc:
            log.debug("position of %s not read: %r", tp, exc)


@app.page("/metrics")
class MetricsView(View):
    async def get(self, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type; the text format is ASCII anyway.
        return self.bytes(generate_latest(), content_type=PROMETHEUS_CONTENT_TYPE)
