"""The figures a benchmark run produces, one record per part, as the report prints them.

Plain data (msgspec structs, so a ceiling subprocess can hand its figures back as JSON); the
arithmetic on raw measurements lives here so that the report and the tests read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import numpy as np

from bench.profile import ProfileSummary

EVENTS_PER_CPU_FIGURE = 100_000


class Throughput(msgspec.Struct, frozen=True):
    """One consumer's run over the loaded topic. The clock and the CPU meter start once its first
    batch is done (start-up and group join excluded), so ``events_measured`` excludes that batch."""

    name: str
    events_total: int
    events_measured: int
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    events_relayed: int = 0
    # What the local Redis server and Kafka broker spent over the same span (bench/servers.py);
    # None where not measured.
    redis_cpu_seconds: float | None = None
    kafka_cpu_seconds: float | None = None

    @property
    def events_per_second(self) -> float | None:
        """None when the run was too short to time (everything arrived in the first batch)."""
        if self.events_measured == 0 or self.seconds <= 0:
            return None
        return self.events_measured / self.seconds

    @property
    def cpu_seconds_per_100k_events(self) -> float | None:
        return self._per_100k_events(self.cpu_seconds)

    @property
    def redis_cpu_seconds_per_100k_events(self) -> float | None:
        return self._per_100k_events(self.redis_cpu_seconds)

    @property
    def kafka_cpu_seconds_per_100k_events(self) -> float | None:
        return self._per_100k_events(self.kafka_cpu_seconds)

    def _per_100k_events(self, seconds: float | None) -> float | None:
        if self.events_measured == 0 or seconds is None:
            return None
        return seconds * EVENTS_PER_CPU_FIGURE / self.events_measured


class StreamSummary(msgspec.Struct, frozen=True):
    seed: int
    projects: int
    catalog_issues: int
    issues_used: int
    events_loaded: int
    events_per_partition: dict[int, int]
    events_of_busiest_project: int
    mean_event_bytes: float
    suppression_rules: int
    rate_limited_projects: int
    load_seconds: float


class WorkerThroughput(msgspec.Struct, frozen=True):
    throughput: Throughput
    # spikewatch_events_total by outcome when the worker had consumed the whole topic.
    outcomes: dict[str, int]
    # SQL statements of the worker process from its start to the end of the topic (cold caches).
    db_statements: int


class SteadyStateCost(msgspec.Struct, frozen=True):
    """A second pass of already-seen issues through the warm worker."""

    events: int
    batches: int
    # Writes of a command or a whole pipeline by the worker process, each awaiting its replies.
    redis_round_trips: int
    # Commands the worker's own Redis connections sent (MONITOR, excluding commands run inside
    # Lua scripts), by command name.
    worker_redis_commands: dict[str, int]
    # INFO stats total_commands_processed over the pass: whole server, Lua-internal calls included.
    server_commands: int
    # INFO commandstats calls over the pass, by command: whole server, Lua-internal calls included.
    server_calls_by_command: dict[str, int]
    db_rows_written: dict[str, int]
    # SQL statements the worker process executed during the pass (bench.worker_probe), by kind
    # ("<verb> <table>"); of which those that stored and named the spikes the pass published, and
    # those of the periodic reload of project configurations (not per event: per 30 s).
    db_statements: int
    db_statements_by_kind: dict[str, int]
    db_statements_for_spikes: int
    db_statements_for_configs: int
    spikes_published: int

    @property
    def redis_round_trips_per_batch(self) -> float:
        return self.redis_round_trips / self.batches if self.batches else 0.0

    @property
    def redis_commands_per_batch(self) -> float:
        return sum(self.worker_redis_commands.values()) / self.batches if self.batches else 0.0

    @property
    def server_commands_per_batch(self) -> float:
        return self.server_commands / self.batches if self.batches else 0.0

    @property
    def db_statements_per_event(self) -> float:
        return self.db_statements / self.events if self.events else 0.0

    @property
    def db_statements_for_events(self) -> int:
        """The statements left once spikes and config reloads are set apart: per-event work."""
        return self.db_statements - self.db_statements_for_spikes - self.db_statements_for_configs

    @property
    def db_statements_for_events_per_event(self) -> float:
        return self.db_statements_for_events / self.events if self.events else 0.0

    @property
    def db_rows_written_per_event(self) -> float:
        return sum(self.db_rows_written.values()) / self.events if self.events else 0.0


class DetectionLatency(msgspec.Struct, frozen=True):
    bursts: int
    threshold: int
    background_events_per_second: float
    background_events: int
    # Seconds from producing each burst's threshold-crossing event to its spike's append time.
    latencies_seconds: list[float]
    bursts_without_spike: int
    other_spikes: int
    # The background rate the plan asked for (a saturated machine may reach less).
    requested_events_per_second: float = 0.0

    @property
    def p50_seconds(self) -> float | None:
        return _percentile(self.latencies_seconds, 50)

    @property
    def p99_seconds(self) -> float | None:
        return _percentile(self.latencies_seconds, 99)


class MemorySample(msgspec.Struct, frozen=True):
    events: int
    rss_bytes: int


class MemoryGrowth(msgspec.Struct, frozen=True):
    fingerprints: int
    samples: list[MemorySample]
    peak_rss_bytes: int
    seconds: float


class PartFailure(msgspec.Struct, frozen=True):
    """A part that could not be measured, and why (with the worker's last log lines if any)."""

    reason: str
    log_tail: str = ""


@dataclass(frozen=True, slots=True)
class BenchReport:
    """Everything one run measured; a part is its figures, a PartFailure, or None when skipped."""

    command: str
    quick: bool
    started_at: str
    machine: dict[str, str]
    versions: dict[str, str]
    stream: StreamSummary
    ceiling_a: Throughput | PartFailure
    ceiling_b: Throughput | PartFailure
    # Events found on ceiling B's output topic afterwards: the proof that B relayed them all.
    relay_topic_events: int
    # Ceiling B's relay as a Faust agent on the worker's Faust settings, and its output topic.
    faust_relay: Throughput | PartFailure
    faust_relay_topic_events: int
    spikewatch: WorkerThroughput | PartFailure
    # Spike records on the worker's spike topic after all its parts.
    spikes_published: int
    steady_state: SteadyStateCost | PartFailure
    # At the target's background rate, and at half the worker's measured throughput.
    latency: DetectionLatency | PartFailure | None
    memory: MemoryGrowth | PartFailure | None
    latency_within_capacity: DetectionLatency | PartFailure | None = None
    # Where the worker's CPU went during the throughput part; None unless --profile.
    profile: ProfileSummary | PartFailure | None = None
    # By number of worker processes (2, 3): they share one consumer group over the whole input
    # topic, from scratch.
    shared_groups: dict[int, Throughput | PartFailure] = field(default_factory=dict)


def _percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), percent))
