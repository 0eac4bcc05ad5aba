"""Soak: an hour of production-like traffic (the benchmark's generator: 20 projects, 5,000 issues
of Zipf popularity, real stack traces) compressed into minutes, through workers at production
settings on servers of the test's own, while every fault of this folder is injected in turn:
a worker killed, a second worker joining and leaving, the broker killed, the database killed,
Redis killed and Redis hung, hostile messages. At the end the accounting is exact.

Not part of the default run (marker ``soak``): ``pytest -m soak -s tests/reliability`` prints
the figures RELIABILITY.md records. ``SOAK_EVENTS`` sets the hour's size (default 180,000: 50
events a second).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from sqlalchemy import insert

from bench import proc
from bench.generator import RARE_TYPE, StreamGenerator
from schemas.db import make_engine
from schemas.events import DeadLetterReason
from schemas.settings import Settings
from schemas.tables import ErrorTrackingSettings, Project, SuppressionRule
from tests.reliability import ledger
from tests.reliability.conftest import LaunchWorker, Worker, topics_on
from tests.reliability.hostile import FORWARDED, Hostile, hostile_messages
from tests.reliability.kafka_io import Position, StreamProducer, wait_until_committed
from tests.reliability.streams import LIMIT_BUCKET_MINUTES, Fate, Planned, is_sampled_out
from tests.support.databases import fresh_database
from tests.support.own_servers import OwnKafkaBroker, OwnPostgres, OwnRedis
from tests.worker.pipelines import new_project_ids
from tests.worker.processes import Topics, committed_offsets
from worker.decode import DecodedEvent, DecodeLimits, decode_event
from worker.fingerprint import fingerprint_event
from worker.stall_watchdog import EXIT_STALLED

pytestmark = [pytest.mark.soak, pytest.mark.timeout(3 * 3600)]

SOAK_EVENTS = int(os.environ.get("SOAK_EVENTS", "180000"))
PARTITIONS = 4
CHUNK_EVENTS = 1_000
# How far production may run ahead of the committed offsets: the workers always have a backlog,
# so every fault lands mid-stream.
MAX_AHEAD_EVENTS = 20_000
# Events sent while Redis is down or hung, all of projects without rate limits (see below).
REDIS_OUTAGE_EVENTS = 2_000
REDIS_HANG_EVENTS = 300
DATABASE_OUTAGE_SECONDS = 15
CATCH_UP_TIMEOUT_SECONDS = 600
# The production batch size (the worker tests use 100).
BATCH_MAX_EVENTS = 1_000
# Production settings but for the test's own services: nothing shortened.
SOAK_SETTINGS: dict[str, str] = {}
STATIC_WORKER_ID = "soak-worker-1"

ISSUE_LIMIT = 400
PROJECT_LIMIT = 3_000
CONNECTION_RESET = "ConnectionResetError"


@dataclass
class Soak:
    """The running soak: its servers, workers and figures."""

    broker: OwnKafkaBroker
    redis: OwnRedis
    postgres: OwnPostgres
    database_url: str
    topics: Topics
    group: str
    producer: StreamProducer
    # Starts a worker: by default the soak's own worker slot, a static member whose restarts
    # take its partitions straight back; with None, a dynamic member (the one that joins and
    # leaves).
    launch: Callable[..., Worker]
    workers: list[Worker] = field(default_factory=list)
    failed_open: set[Position] = field(default_factory=set)
    figures: dict[str, Any] = field(default_factory=dict)
    consumed_by_dead: int = 0
    peak_rss: list[int] = field(default_factory=list)

    @property
    def running(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.running]

    async def caught_up(self, label: str) -> None:
        """Wait until every offset sent so far is committed; record how long it took."""
        seconds = await wait_until_committed(
            self.broker.bootstrap,
            self.group,
            self.producer.end_offsets(),
            timeout_seconds=CATCH_UP_TIMEOUT_SECONDS,
            workers=self.workers,
        )
        self.figures[f"{label}: catch-up seconds"] = round(seconds, 1)

    async def throttle(self) -> None:
        """Hold production while it runs more than MAX_AHEAD_EVENTS ahead of the commits."""
        while True:
            if len(self.producer.sent) - await self.committed_events() <= MAX_AHEAD_EVENTS:
                return
            await asyncio.sleep(0.5)

    async def committed_events(self) -> int:
        try:
            committed = await committed_offsets(self.broker.bootstrap, self.group)
        except (KafkaError, OSError):  # no coordinator yet: nothing committed yet
            return 0
        return sum(committed.values())

    async def note_death(self, worker: Worker) -> None:
        self.consumed_by_dead += await worker.consumed()
        self.peak_rss.append(proc.peak_resident_bytes(worker.pid))

    async def supervise(self) -> None:
        """What a process supervisor does for the workers: start one again when it exits after
        a stall (``worker/stall_watchdog.py``). Any other exit is left for the books to show."""
        restarted: set[int] = set()
        while True:
            for worker in list(self.workers):
                if worker.exit_code == EXIT_STALLED and worker.pid not in restarted:
                    restarted.add(worker.pid)
                    self.figures["workers restarted after a stall"] = len(restarted)
                    self.launch()
            await asyncio.sleep(1)


def _rules(generator: StreamGenerator) -> tuple[list[dict[str, Any]], dict[int, tuple[str, float]]]:
    """The bench's kinds of rules, reduced to exact type matches so that the test can tell each
    event's fate without the worker's filter engine: sample the rare chunk errors of four
    JavaScript projects, drop every connection reset of three Python projects."""
    javascript = set(generator.javascript_projects)
    python = [p for p in generator.project_ids if p not in javascript]
    by_project = {p: (RARE_TYPE, 0.1) for p in generator.javascript_projects[:4]}
    by_project |= {p: (CONNECTION_RESET, 1.0) for p in python[:3]}
    rows = [
        {
            "project_id": project_id,
            "filters": {"type": "AND", "values": [{"key": "$exception_types", "value": [kind]}]},
            "sampling_rate": rate,
        }
        for project_id, (kind, rate) in by_project.items()
    ]
    return rows, by_project


def _limits(projects: list[int]) -> dict[int, ledger.Limits]:
    """Issue limits on four projects, a project limit on two of them (buckets of a year: exact)."""
    return {
        project_id: ledger.Limits(ISSUE_LIMIT, PROJECT_LIMIT if n < 2 else None)
        for n, project_id in enumerate(projects[:4])
    }


def _decoded(value: bytes | None, limits: DecodeLimits) -> tuple[DecodedEvent, str]:
    """The event as the worker decodes it, and its fingerprint (grouping is tested elsewhere;
    here it only names the issue an event counts under)."""
    assert value is not None
    decoded = decode_event(value, limits)
    assert isinstance(decoded, DecodedEvent), decoded
    properties = decoded.exception_properties
    return decoded, fingerprint_event(properties.exception_list, properties.exception_fingerprint)


def _fate(
    value: bytes, project_id: int, rules: dict[int, tuple[str, float]], limits: DecodeLimits
) -> Fate:
    decoded, fingerprint = _decoded(value, limits)
    exceptions = decoded.exception_properties.exception_list
    kind, rate = rules.get(project_id, ("", 0.0))
    suppressed = any(e.type == kind for e in exceptions) and is_sampled_out(
        decoded.event.uuid, rate
    )
    return Fate(decoded.event.uuid, project_id, fingerprint, suppressed=suppressed)


@pytest.fixture
async def own_postgres_url(tmp_path: pathlib.Path) -> AsyncIterator[tuple[OwnPostgres, str]]:
    cluster = OwnPostgres()
    try:
        cluster.start()
        async with fresh_database("postgresql", tmp_path, cluster.admin_url) as url:
            yield cluster, url
    finally:
        cluster.remove()


async def test_an_hour_of_traffic_through_every_fault_in_turn_is_accounted_exactly(
    own_kafka: OwnKafkaBroker,
    persistent_redis: OwnRedis,
    own_postgres_url: tuple[OwnPostgres, str],
    launch_worker: LaunchWorker,
) -> None:
    postgres, database_url = own_postgres_url
    projects = new_project_ids(20)
    generator = StreamGenerator(seed=8, project_ids=projects)
    rule_rows, rules = _rules(generator)
    limits = _limits(projects)
    partition_of = {project_id: n % PARTITIONS for n, project_id in enumerate(projects)}
    unlimited_issues = [
        n for n, issue in enumerate(generator.catalog) if issue.project_id not in limits
    ]
    decode_limits = DecodeLimits.from_settings(Settings())
    engine = make_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            insert(Project), [{"id": p, "name": f"soak {p}"} for p in projects]
        )
        await connection.execute(insert(SuppressionRule), rule_rows)
        await connection.execute(
            insert(ErrorTrackingSettings),
            [
                {
                    "project_id": project_id,
                    "per_issue_rate_limit_value": limit.issue,
                    "per_issue_rate_limit_bucket_size_minutes": LIMIT_BUCKET_MINUTES,
                    "project_rate_limit_value": limit.project,
                    "project_rate_limit_bucket_size_minutes": LIMIT_BUCKET_MINUTES,
                }
                for project_id, limit in limits.items()
            ],
        )

    def hostile_fate(message: Hostile) -> Fate:
        reason = DeadLetterReason(message.fate)
        if not message.counted:
            return Fate(dead_letter_reason=reason)
        decoded, fingerprint = _decoded(message.value, decode_limits)
        return Fate(decoded.event.uuid, projects[-1], fingerprint, dead_letter_reason=reason)

    def hostile() -> list[Planned]:
        """The dead-lettered kinds of hostile message, new uuids each time (the valid kinds are
        test_hostile_kafka_input's)."""
        kinds = hostile_messages(projects[-1], new_project_ids(1)[0])
        return [
            Planned(n % PARTITIONS, h.value, hostile_fate(h), key=b"hostile")
            for n, h in enumerate(h for h in kinds if h.fate != FORWARDED)
        ]

    def planned(count: int, issue_pool: list[int] | None = None) -> Iterator[Planned]:
        for event in generator.events(count, issue_pool=issue_pool):
            fate = _fate(event.value, event.project_id, rules, decode_limits)
            yield Planned(partition_of[event.project_id], event.value, fate, key=event.key)

    redis = Redis.from_url(persistent_redis.url)
    started = time.monotonic()
    async with (
        topics_on(own_kafka.bootstrap, PARTITIONS) as topics,
        StreamProducer(own_kafka.bootstrap, topics.exception_events) as producer,
    ):
        group = f"soak-{uuid.uuid4().hex}"

        def launch(instance_id: str | None = STATIC_WORKER_ID) -> Worker:
            member = {"WORKER_INSTANCE_ID": instance_id} if instance_id else {}
            worker = launch_worker(
                database_url,
                own_kafka.bootstrap,
                topics,
                group,
                redis=persistent_redis.url,
                settings_env={**SOAK_SETTINGS, **member},
                batch_max_events=BATCH_MAX_EVENTS,
            )
            soak.workers.append(worker)
            return worker

        soak = Soak(
            own_kafka, persistent_redis, postgres, database_url, topics, group, producer, launch
        )
        launch()
        supervisor = asyncio.create_task(soak.supervise())
        faults = _faults(soak, planned, unlimited_issues, hostile)
        sent_events = 0
        async with ledger.ReplayLogWatcher(
            redis, topics.exception_events, limits, range(PARTITIONS)
        ) as watcher:
            for fraction, label, fault in faults:
                target = int(SOAK_EVENTS * fraction)
                while sent_events < target:
                    count = min(CHUNK_EVENTS, target - sent_events)
                    await producer.send(planned(count))
                    sent_events += count
                    await soak.throttle()
                fault_started = time.monotonic()
                await fault()
                soak.figures[f"{label}: fault seconds"] = round(time.monotonic() - fault_started, 1)
                await soak.caught_up(label)
            await soak.caught_up("end of stream")
        supervisor.cancel()
        elapsed = time.monotonic() - started

        expected = ledger.expect(producer.sent, limits, soak.failed_open)
        observed = await ledger.observe(
            own_kafka.bootstrap, topics, redis, producer.sent, seen_limited=watcher.seen
        )
        survivors = soak.running
        consumed = soak.consumed_by_dead + sum([await w.consumed() for w in survivors])
        samples = [await w.metrics() for w in survivors]
        peak_rss = soak.peak_rss + [proc.peak_resident_bytes(w.pid) for w in survivors]

    try:
        wrong = ledger.unexplained(expected, observed)
        totals = ledger.outcome_totals(expected, observed)
        soak.figures |= {
            "input messages": len(producer.sent),
            "seconds": round(elapsed),
            "events a second": round(len(producer.sent) / elapsed),
            "outcomes": totals,
            "project-limited expected": expected.project_limited,
            "events consumed (with replays)": consumed,
            "failed open (sent while Redis was away)": len(soak.failed_open),
            "redis fail-open events (survivors' metrics)": sum(
                s.get("spikewatch_redis_fail_open_events_total", 0) for s in samples
            ),
            "spike events": len(observed.spikes),
            "distinct spike ids": len({spike.id for spike in observed.spikes}),
            "duplicate deliveries": sum(n - 1 for n in observed.deliveries.values()),
            "peak RSS MB per worker": [round(rss / 2**20) for rss in peak_rss],
            "unexplained": len(wrong),
        }
        print("\nSOAK FIGURES\n" + json.dumps(soak.figures, indent=2, default=str))
        assert wrong == {}
        # The survivor met both Redis outages: it failed open for exactly the events sent then
        # (those a rule suppressed never reach Redis).
        assert soak.figures["redis fail-open events (survivors' metrics)"] == len(
            soak.failed_open
            - {p for p, fate in expected.fates.items() if fate == ledger.SUPPRESSED}
        )
        assert totals.get(ledger.RATE_LIMITED_PROJECT, 0) == expected.project_limited
        assert sum(totals.values()) == len(producer.sent)
        assert all(len(ids) == 1 for ids in observed.issue_ids_carried.values())
        await ledger.assert_single_application(redis, engine, expected, limits)
        # No spike twice: each (issue, bucket) once on the topic, each stored once.
        assert len({spike.id for spike in observed.spikes}) == len(observed.spikes)
        assert sorted(await ledger.spike_ids_stored(engine)) == sorted(
            spike.id for spike in observed.spikes
        )
    finally:
        await redis.aclose()
        await engine.dispose()


Fault = tuple[float, str, Callable[[], Any]]


def _faults(
    soak: Soak,
    planned: Callable[..., Iterator[Planned]],
    unlimited_issues: list[int],
    hostile: Callable[[], list[Planned]],
) -> list[Fault]:
    """The faults in turn, each at a fraction of the stream sent so far."""

    async def kill_worker() -> None:
        [victim] = soak.running
        await soak.note_death(victim)
        victim.kill()
        soak.launch()

    async def second_worker_joins() -> None:
        joining = soak.launch(None)
        await joining.wait_until_serving()

    async def second_worker_leaves() -> None:
        leaving = soak.running[-1]
        await soak.note_death(leaving)
        await asyncio.to_thread(leaving.stop)

    async def broker_crash() -> None:
        soak.broker.crash()
        soak.broker.start()
        await soak.broker.wait_ready()

    async def database_crash() -> None:
        soak.postgres.crash()
        await asyncio.sleep(DATABASE_OUTAGE_SECONDS)
        soak.postgres.start()

    async def redis_outage(
        label: str, count: int, stop: Callable[[], None], resume: Callable[[], Awaitable[None]]
    ) -> None:
        # Which events meet no Redis must be exactly known: the backlog goes first, and only
        # projects without limits are sent meanwhile, so failing open changes counts only.
        await soak.caught_up(f"{label}: backlog before")
        stop()
        before = len(soak.producer.sent)
        await soak.producer.send(planned(count, issue_pool=unlimited_issues))
        soak.failed_open |= {position for _, position in soak.producer.sent[before:]}
        await soak.caught_up(f"{label}: {count} events while away")
        await resume()

    async def redis_crash() -> None:
        async def restart() -> None:
            soak.redis.start()
            await soak.redis.wait_ready()

        await redis_outage("Redis killed", REDIS_OUTAGE_EVENTS, soak.redis.crash, restart)

    async def redis_hang() -> None:
        async def thaw() -> None:
            soak.redis.thaw()

        await redis_outage("Redis hung", REDIS_HANG_EVENTS, soak.redis.freeze, thaw)

    async def hostile_messages() -> None:
        await soak.producer.send(hostile())

    async def nothing() -> None:
        return None

    return [
        (0.10, "clean start", nothing),
        (0.15, "worker killed (kill -9) and restarted", kill_worker),
        (0.25, "hostile messages", hostile_messages),
        (0.30, "second worker joins", second_worker_joins),
        (0.40, "second worker leaves", second_worker_leaves),
        (0.50, "broker killed (kill -9) and restarted", broker_crash),
        (0.60, "database killed (immediate stop) for 15 s", database_crash),
        (0.70, "Redis killed (kill -9) and restarted", redis_crash),
        (0.80, "Redis hung (SIGSTOP) and resumed", redis_hang),
        (0.90, "hostile messages again", hostile_messages),
        (1.00, "end of stream", nothing),
    ]
