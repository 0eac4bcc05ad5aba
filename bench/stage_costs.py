"""CPU per event of the worker's pure stages, without Kafka, Redis or a database.

Times ``decode_batch``, ``fingerprint_batch`` (with its fingerprint memo warm, as in a running
worker) and ``output_messages`` (every event forwarded) over events of ``bench.generator``, and
prints microseconds of CPU per event for each, the best of several rounds. CPU time rather than
wall time, so that other processes on the machine disturb the figures less; the cycle collector is
off while a round runs, as the worker keeps it off during a batch (``worker.garbage``).

    .venv/bin/python -m bench.stage_costs [--events 20000] [--rounds 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import time
import uuid
from collections.abc import Callable, Sequence

from bench.generator import PROJECT_COUNT, StreamGenerator
from worker.decode import DecodeLimits, decode_batch
from worker.fingerprint import fingerprint_batch
from worker.outcomes import Outcome
from worker.records import EventRecord, SourceMessage
from worker.sinks import OutputTopics, output_messages

LIMITS = DecodeLimits(max_message_bytes=1_000_000, max_exceptions=50, max_frames_per_exception=500)
TOPICS = OutputTopics(accepted="accepted", dead_letter="dead-letters")
ISSUE_ID = uuid.UUID("0192e5b1-7c3a-7d1e-9f00-4b6f1f0a2c3d")


def stage_costs(values: Sequence[bytes], rounds: int) -> dict[str, float]:
    """Best CPU microseconds per event of each stage over ``values``."""

    def fresh() -> list[EventRecord]:
        return [
            EventRecord(SourceMessage("in", 0, offset, None, value))
            for offset, value in enumerate(values)
        ]

    decoded = decode_batch(fresh(), LIMITS)
    forwarded = fingerprint_batch(decode_batch(fresh(), LIMITS))
    for record in forwarded:
        record.issue_id = ISSUE_ID
        record.finish(Outcome.FORWARDED)
    return {
        "decode": _best(lambda batch: decode_batch(batch, LIMITS), fresh, rounds),
        "fingerprint": _best(fingerprint_batch, lambda: decoded, rounds),
        "output": _best(lambda batch: output_messages(batch, TOPICS), lambda: forwarded, rounds),
    }


def _best(
    run: Callable[[Sequence[EventRecord]], object],
    batch: Callable[[], Sequence[EventRecord]],
    rounds: int,
) -> float:
    times = []
    for _ in range(rounds):
        records = batch()
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            run(records)
            times.append((time.process_time() - started) / len(records))
        finally:
            gc.enable()
    return min(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    generator = StreamGenerator(args.seed, range(1, PROJECT_COUNT + 1))
    values = [event.value for event in generator.events(args.events)]
    costs = stage_costs(values, args.rounds)
    for stage, microseconds in costs.items():
        print(f"{stage:<12} {microseconds:7.1f} us/event")
    print(f"{'total':<12} {sum(costs.values()):7.1f} us/event")


if __name__ == "__main__":
    main()
