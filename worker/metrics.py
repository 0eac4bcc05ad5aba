"""The worker's Prometheus metrics, served on its web port at ``/metrics``.

The outcome counters are the accounting contract: each consumed event counts once in
``spikewatch_events_consumed_total`` and once under one outcome of ``spikewatch_events_total``.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from schemas.events import DeadLetterReason
from worker.outcomes import Outcome
from worker.records import EventRecord

EVENTS_CONSUMED = Counter(
    "spikewatch_events_consumed", "Input events consumed from the exception events topic."
)
EVENTS = Counter(
    "spikewatch_events", "Input events by the outcome they ended in.", labelnames=["outcome"]
)
DEAD_LETTERS = Counter(
    "spikewatch_dead_letters", "Dead-lettered events by reason.", labelnames=["reason"]
)
BATCH_SIZE = Histogram(
    "spikewatch_batch_size_events",
    "Events per processed batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_DURATION = Histogram(
    "spikewatch_batch_duration_seconds",
    "Time from receiving a batch to its effects being durable (forwarded, dead-lettered, stored).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge(
    "spikewatch_consumer_lag_messages",
    "Messages in a partition after the last one this worker processed (highwater - next offset).",
    labelnames=["topic", "partition"],
)
STALL_SECONDS = Gauge(
    "spikewatch_stall_seconds",
    "Seconds since the consumer group last committed while events wait (0 when none wait); "
    "the worker exits at STALL_LIMIT_SECONDS.",
)
EVENTS_WAITING = Gauge(
    "spikewatch_events_waiting",
    "Events waiting in the assigned partitions at the last stall check: log end offsets minus "
    "the group's committed offsets, both read from the broker.",
)
REDIS_FAIL_OPEN = Counter(
    "spikewatch_redis_fail_open",
    "Times a stage carried on without Redis (fail open) because Redis was unavailable.",
    labelnames=["stage"],
)
SPIKES_EMITTED = Counter(
    "spikewatch_spikes_emitted",
    "Spike events stored and acknowledged by the broker on the spike topic.",
)
SPIKES_SNOOZED = Counter(
    "spikewatch_spikes_snoozed",
    "Issues that broke the spike rule while snoozed by an earlier spike, so emitted nothing.",
)
SUPPRESSION_RULES_DISABLED = Counter(
    "spikewatch_suppression_rules_disabled",
    "Suppression rules this worker disabled because they failed (disabled_data written).",
)
INFRASTRUCTURE_RETRIES = Counter(
    "spikewatch_infrastructure_retries",
    "Attempts that hit an outage of a dependency and were retried after a backoff.",
    labelnames=["dependency"],
)

# Export every label value from the start, so a sum over outcomes is complete before the first
# event of a kind arrives.
for _outcome in Outcome:
    EVENTS.labels(outcome=_outcome.value)
for _reason in DeadLetterReason:
    DEAD_LETTERS.labels(reason=_reason.value)


def observe_batch(records: Sequence[EventRecord], duration_seconds: float) -> None:
    """Account for a batch whose effects are durable; every record must have its outcome."""
    outcomes = collections.Counter(record.outcome for record in records)
    if None in outcomes:
        raise ValueError("a record finished its batch without an outcome")
    reasons = collections.Counter(
        record.dead_letter.reason for record in records if record.dead_letter is not None
    )
    EVENTS_CONSUMED.inc(len(records))
    # Once per label value, not per event: a labelled child costs a lookup under a lock.
    for outcome, count in outcomes.items():
        EVENTS.labels(outcome=str(outcome)).inc(count)
    for reason, count in reasons.items():
        DEAD_LETTERS.labels(reason=reason.value).inc(count)
    BATCH_SIZE.observe(len(records))
    BATCH_DURATION.observe(duration_seconds)
