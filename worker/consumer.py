"""The consumer loop: whole batches from Kafka to the pipeline, offsets committed after durability.

An aiokafka consumer in the worker's consumer group fetches in the background; each ``getmany``
hands one batch, partition by partition in offset order, to ``handle``, which returns once the
batch's effects are durable. Only then are the batch's offsets committed, and only for partitions
the worker still owns. A rebalance first waits for the batch in hand (up to a bound) so that it is
finished and committed before its partitions go; a batch it cannot wait for is dropped
uncommitted, and the partitions' next owner reads it again from the last commit (every effect is
idempotent or at-least-once). Knows nothing of Faust or of the stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError

from worker.records import SourceMessage

log = logging.getLogger(__name__)

# Returns once every effect of the batch is durable (forwarded, dead-lettered, counted, stored).
BatchHandler = Callable[[Sequence[SourceMessage]], Awaitable[object]]

# Heartbeats run on the event loop beside the pipeline, which never blocks it for long (a batch of
# a thousand events is a fraction of a second of CPU), so a few missed ones still leave a margin.
HEARTBEATS_PER_SESSION = 5
# How long a stopping worker waits for the batch in hand: an orderly stop should not sit through
# an outage; what it drops is read again by the next owner.
STOP_WAIT_SECONDS = 5.0
# How long a rebalance waits for the batch in hand before dropping it: a batch normally takes well
# under a second; one held up by an outage is read again by the partition's next owner.
REVOKE_WAIT_SECONDS = 20.0
# How long the group coordinator waits for every member to rejoin: past the revoke wait, so a
# member that waited for its batch is still in the new generation.
REBALANCE_TIMEOUT_SECONDS = REVOKE_WAIT_SECONDS + 10.0
# A batch held up longer than this (a long outage) makes the consumer rejoin its group when it
# next fetches; the stall watchdog acts well before.
MAX_POLL_INTERVAL_SECONDS = 300.0
# A partition without a fetch position yet (the consumer is still asking the broker) is left
# out of the lag rather than waited for.
POSITION_TIMEOUT_SECONDS = 1.0
# Fetched ahead per partition while a batch is processed: a batch or two of events of a few KB.
MAX_PARTITION_FETCH_BYTES = 4 * 1_048_576


@dataclass(frozen=True, slots=True)
class Membership:
    """How the worker belongs to its consumer group.

    With an ``instance_id`` (static membership) a worker that restarts under the same id gets its
    partitions back at once, without a rebalance and without waiting for its old session to
    expire; a static member that stops for good hands its partitions on when its session times
    out. Without one, every start and stop rebalances the group, and a crashed member's partitions
    wait for its session timeout.
    """

    group: str
    session_timeout_seconds: float
    instance_id: str | None = None

    @property
    def heartbeat_seconds(self) -> float:
        return self.session_timeout_seconds / HEARTBEATS_PER_SESSION


def instance_id(configured: str | None, hostname: str) -> str | None:
    """The static member id from the setting, ``{hostname}`` standing for the host's name (a
    container keeps its name across restarts, a StatefulSet's pod too); unset or blank: none."""
    if configured is None or not configured.strip():
        return None
    return configured.strip().replace("{hostname}", hostname)


def group_consumer(bootstrap_servers: list[str], membership: Membership) -> AIOKafkaConsumer:
    """An aiokafka consumer that commits only when told to and starts a new group at the oldest
    event still in the topic, never at its end."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=membership.group,
        group_instance_id=membership.instance_id,
        client_id=membership.instance_id or membership.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(membership.session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(membership.heartbeat_seconds * 1000),
        rebalance_timeout_ms=int(REBALANCE_TIMEOUT_SECONDS * 1000),
        max_poll_interval_ms=int(MAX_POLL_INTERVAL_SECONDS * 1000),
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        # Partitions stay with their owner across rebalances where they can: fewer caches to warm.
        partition_assignment_strategy=(StickyPartitionAssignor,),
    )


class BatchConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        handle: BatchHandler,
        *,
        max_events: int,
        wait_seconds: float,
        revoke_wait_seconds: float = REVOKE_WAIT_SECONDS,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._handle = handle
        self._max_events = max_events
        self._wait_ms = int(wait_seconds * 1000)
        self._revoke_wait_seconds = revoke_wait_seconds
        self._in_hand: asyncio.Task[None] | None = None
        self._stopping = False
        # Offset after the last event finished, per partition owned: the consumer lag's reference.
        self.next_offsets: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        await self._consumer.start()

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    async def position(self, tp: TopicPartition) -> int | None:
        """Where the next batch of ``tp`` starts: the offset after the last event finished, or
        the fetch position before this worker finished any; None while it is not known."""
        if tp in self.next_offsets:
            return self.next_offsets[tp]
        try:
            return int(
                await asyncio.wait_for(self._consumer.position(tp), POSITION_TIMEOUT_SECONDS)
            )
        except Exception as exc:  # not assigned any more, or no position yet
            log.debug("position of %s not read: %r", tp, exc)
            return None

    async def run(self) -> None:
        """Batch after batch until ``stop``; a batch's own failure ends the loop with it."""
        while not self._stopping:
            try:
                fetched = await self._consumer.getmany(
                    timeout_ms=self._wait_ms, max_records=self._max_events
                )
            except ConsumerStoppedError:
                return
            if not fetched or self._stopping:
                continue
            self._in_hand = asyncio.ensure_future(self._process(fetched))
            await asyncio.wait({self._in_hand})
            in_hand, self._in_hand = self._in_hand, None
            if not in_hand.cancelled():
                in_hand.result()

    async def stop(self) -> None:
        """Finish the batch in hand (as a rebalance would), then leave: its commit stands."""
        self._stopping = True
        await self._finish_in_hand("the worker stops", STOP_WAIT_SECONDS)
        await self._consumer.stop()

    async def _process(self, fetched: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        messages = [_source_message(record) for records in fetched.values() for record in records]
        await self._handle(messages)
        await self._commit({tp: records[-1].offset + 1 for tp, records in fetched.items()})

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        owned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on without this member: its partitions are someone else's now, and
            # the new owner reads this batch again from the last commit.
            log.warning("offsets %s not committed, the group rebalanced: %r", offsets, exc)
            return
        self.next_offsets.update(offsets)

    async def _finish_in_hand(self, why: str, wait_seconds: float) -> None:
        in_hand = self._in_hand
        if in_hand is None or in_hand.done():
            return
        done, _ = await asyncio.wait({in_hand}, timeout=wait_seconds)
        if not done:
            log.warning(
                "%s: the batch in hand did not finish in %.0f s; dropped uncommitted",
                why,
                wait_seconds,
            )
            in_hand.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await in_hand

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._finish_in_hand(
            f"partitions {sorted(revoked)} revoked", self._revoke_wait_seconds
        )
        for tp in revoked:
            self.next_offsets.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, batches: BatchConsumer) -> None:
        self._batches = batches

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._batches.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(assigned))


def _source_message(record: ConsumerRecord) -> SourceMessage:
    return SourceMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        # A null value (a tombstone) would crash decode and the DLQ alike, batch after batch;
        # as an empty message it is dead-lettered like any other invalid input.
        value=record.value if record.value is not None else b"",
    )
