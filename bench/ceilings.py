"""The machine's own ceilings on the loaded topic, each measured in a subprocess of its own:
A consumes (getmany) and decodes every event; B also re-encodes it, produces it to another topic
and awaits delivery and the offset commit per batch, the least any at-least-once relay must do.
Beside them, the Faust floor: B's relay as a Faust agent (``bench.faust_relay``).

``python -m bench.ceilings`` is the child; ``run_ceiling`` starts it and reads its one JSON line.
None does any of spikewatch's work, so none may be compared to it on anything but speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys
import time
import uuid

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import proc
from bench.results import Throughput
from schemas.events import ExceptionEvent

CEILING_A = "A"
CEILING_B = "B"
# The worker's default batch (Settings.batch_max_events), so batches are alike on all sides.
BATCH_MAX_EVENTS = 1_000
POLL_TIMEOUT_MS = 200
# Tuned for the relay's best throughput: the ceiling is the machine's, not a default config's.
RELAY_LINGER_MS = 5
RELAY_MAX_BATCH_BYTES = 1_048_576
RELAY_MAX_REQUEST_BYTES = 4_194_304


async def run_ceiling(
    kind: str,
    *,
    bootstrap: str,
    topic: str,
    expected: int,
    relay_topic: str | None = None,
    timeout_seconds: float,
) -> Throughput:
    """Run ceiling ``kind`` ("A" or "B") over the first ``expected`` events of ``topic``."""
    command = [
        sys.executable, "-m", "bench.ceilings", kind,
        "--bootstrap", bootstrap, "--topic", topic, "--expected", str(expected),
    ]  # fmt: skip
    if relay_topic is not None:
        command += ["--relay-topic", relay_topic]
    child = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(), timeout_seconds)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise RuntimeError(
            f"ceiling {kind} did not finish within {timeout_seconds:.0f} s"
        ) from None
    if child.returncode != 0:
        raise RuntimeError(f"ceiling {kind} failed: {stderr.decode(errors='replace')[-2000:]}")
    return msgspec.json.decode(stdout.splitlines()[-1], type=Throughput)


async def run_faust_relay(
    *,
    bootstrap: str,
    topic: str,
    expected: int,
    relay_topic: str,
    workdir: pathlib.Path,
    timeout_seconds: float,
) -> Throughput:
    """Run ``bench.faust_relay`` over the first ``expected`` events of ``topic``."""
    home = workdir / f"faust-relay-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    result = home / "result.json"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_RELAY_SOURCE": topic,
        "BENCH_RELAY_TARGET": relay_topic,
        "BENCH_RELAY_EXPECTED": str(expected),
        "BENCH_RELAY_RESULT": str(result),
        "BENCH_RELAY_GROUP": f"bench-faust-relay-{uuid.uuid4().hex[:8]}",
    }
    with (home / "faust.log").open("wb") as log:
        # Faust keeps a data directory where it runs: the child runs in a directory of its own.
        child = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "faust", "-A", "bench.faust_relay", "worker", "-l", "warn"],
            cwd=home,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await asyncio.wait_for(child.wait(), timeout_seconds)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise RuntimeError(
                f"the Faust relay did not finish within {timeout_seconds:.0f} s"
            ) from None
    if child.returncode != 0 or not result.exists():
        tail = (home / "faust.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the Faust relay failed (status {child.returncode}): {tail}")
    return msgspec.json.decode(result.read_bytes(), type=Throughput)


async def consume(
    kind: str, bootstrap: str, topic: str, expected: int, relay_topic: str | None
) -> Throughput:
    if kind == CEILING_B and relay_topic is None:
        raise ValueError("ceiling B needs a topic to relay to")
    decoder = msgspec.json.Decoder(ExceptionEvent)
    encoder = msgspec.json.Encoder()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-ceiling-{kind}-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=RELAY_LINGER_MS,
        max_batch_size=RELAY_MAX_BATCH_BYTES,
        max_request_size=RELAY_MAX_REQUEST_BYTES,
    )
    await consumer.start()
    if kind == CEILING_B:
        await producer.start()
    consumed = relayed = 0
    # The clock starts after the first batch, as for the worker: group join and start-up excluded.
    started_at = started_cpu = None
    consumed_at_start = 0
    try:
        while consumed < expected:
            batches = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_MAX_EVENTS
            )
            deliveries = []
            for messages in batches.values():
                for message in messages:
                    event = decoder.decode(message.value)
                    consumed += 1
                    if kind == CEILING_B:
                        deliveries.append(
                            await producer.send(relay_topic, encoder.encode(event), key=message.key)
                        )
            if deliveries:
                await asyncio.gather(*deliveries)
                relayed += len(deliveries)
                await consumer.commit()
            if started_at is None and consumed:
                started_at, started_cpu = time.perf_counter(), proc.cpu_seconds()
                consumed_at_start = consumed
        finished_at, finished_cpu = time.perf_counter(), proc.cpu_seconds()
    finally:
        await consumer.stop()
        if kind == CEILING_B:
            await producer.stop()
    return Throughput(
        name=f"ceiling {kind}",
        events_total=consumed,
        events_measured=consumed - consumed_at_start,
        seconds=finished_at - (started_at or finished_at),
        cpu_seconds=finished_cpu - (started_cpu or finished_cpu),
        peak_rss_bytes=proc.peak_resident_bytes(),
        events_relayed=relayed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="A ceiling of the spikewatch benchmark.")
    parser.add_argument("kind", choices=[CEILING_A, CEILING_B])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--relay-topic")
    args = parser.parse_args()
    result = asyncio.run(
        consume(args.kind, args.bootstrap, args.topic, args.expected, args.relay_topic)
    )
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
