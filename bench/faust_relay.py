"""The Faust floor, as a child process: ceiling B's relay (decode each event, re-encode it, produce
it to another topic, await every delivery, then ack the batch) written as a Faust agent, on the
worker's own Faust settings. Whatever a Faust worker does per event comes on top of this.

Run as ``faust -A bench.faust_relay worker`` with the ``BENCH_RELAY_*`` environment that
``bench.ceilings.run_faust_relay`` sets; it writes its figures as JSON to ``BENCH_RELAY_RESULT``
and exits. It never imports the worker: the settings below repeat the worker's, on purpose.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import time

import faust
import mode.loop
import msgspec

from bench import proc
from bench.results import Throughput
from schemas.events import ExceptionEvent

mode.loop.use("uvloop")

SOURCE_TOPIC = os.environ["BENCH_RELAY_SOURCE"]
TARGET_TOPIC = os.environ["BENCH_RELAY_TARGET"]
EXPECTED_EVENTS = int(os.environ["BENCH_RELAY_EXPECTED"])
RESULT_PATH = pathlib.Path(os.environ["BENCH_RELAY_RESULT"])
# The worker's batch (Settings.batch_max_events, batch_within_seconds) and Faust settings.
BATCH_MAX_EVENTS = 1_000
BATCH_WITHIN_SECONDS = 0.2

app = faust.App(
    os.environ["BENCH_RELAY_GROUP"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    web_enabled=False,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    stream_wait_empty=False,
    topic_disable_leader=True,
    producer_max_request_size=1_048_576,
    producer_max_batch_size=1_048_576,
    consumer_max_fetch_size=4 * 1_048_576,
)
source = app.topic(SOURCE_TOPIC)


@app.agent(source, concurrency=1)
async def relay(stream: faust.StreamT[bytes]) -> None:
    decoder = msgspec.json.Decoder(ExceptionEvent)
    encoder = msgspec.json.Encoder()
    relayed = 0
    # The clock starts after the first batch, as for the ceilings and the worker.
    started: tuple[float, float, int] | None = None
    async for events in stream.noack_take(BATCH_MAX_EVENTS, within=BATCH_WITHIN_SECONDS):
        deliveries = []
        for event in events:
            message = event.message
            value = encoder.encode(decoder.decode(message.value))
            deliveries.append(
                await app.producer.send(
                    TARGET_TOPIC, message.key, value, partition=None, timestamp=None, headers=None
                )
            )
        await asyncio.gather(*deliveries)
        for event in events:
            await stream.ack(event)
        relayed += len(events)
        if started is None:
            started = (time.perf_counter(), proc.cpu_seconds(), relayed)
        if relayed >= EXPECTED_EVENTS:
            _finish(started, relayed)


def _finish(started: tuple[float, float, int], relayed: int) -> None:
    started_at, started_cpu, relayed_at_start = started
    result = Throughput(
        name="Faust relay",
        events_total=relayed,
        events_measured=relayed - relayed_at_start,
        seconds=time.perf_counter() - started_at,
        cpu_seconds=proc.cpu_seconds() - started_cpu,
        peak_rss_bytes=proc.peak_resident_bytes(),
        events_relayed=relayed,
    )
    RESULT_PATH.write_bytes(msgspec.json.encode(result))
    # The figures are written and every delivery acknowledged: nothing is left to shut down
    # that the run depends on, and Faust's own shutdown would only add seconds.
    os._exit(0)
