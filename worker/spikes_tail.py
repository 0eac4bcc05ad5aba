"""`spikewatch spikes tail`: follow the spike topic and print one readable line per spike.

Owns a read-only Kafka consumer without a consumer group, so tailing never moves the offsets
of the worker or of any alerting system. It never writes to Kafka, Redis or the database.
"""

from __future__ import annotations

import logging
from typing import TextIO

import msgspec
from aiokafka import AIOKafkaConsumer

from schemas.events import SpikeEventMessage

logger = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(SpikeEventMessage)


def format_spike_line(spike: SpikeEventMessage) -> str:
    name = spike.issue.name or "(unnamed issue)"
    limit = spike.computed_baseline * spike.multiplier
    return (
        f"{spike.detected_at}  project {spike.project_id}  {name}  "
        f"current {spike.current_bucket_value} vs baseline {spike.computed_baseline:g}"
        f" × {spike.multiplier} = {limit:g}  (issue {spike.issue.id}, bucket {spike.bucket_start})"
    )


async def tail_spikes(
    bootstrap_servers: str,
    topic: str,
    *,
    from_beginning: bool,
    out: TextIO,
    max_events: int | None = None,
) -> int:
    """Print spikes of ``topic`` to ``out`` until ``max_events`` (forever if None); return the
    number printed. Messages that are not spike events are logged and skipped."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    printed = 0
    await consumer.start()
    try:
        async for message in consumer:
            try:
                spike = _decoder.decode(message.value or b"")
            except msgspec.DecodeError as exc:
                logger.warning(
                    "Skipping a message that is not a spike event (partition %d, offset %d): %s",
                    message.partition,
                    message.offset,
                    exc,
                )
                continue
            out.write(format_spike_line(spike) + "\n")
            out.flush()
            printed += 1
            if max_events is not None and printed >= max_events:
                break
    finally:
        await consumer.stop()
    return printed
