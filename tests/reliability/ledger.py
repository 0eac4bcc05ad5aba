"""The books of a run: what each input message had to become, what it was observed to become,
and the Redis state a single application of the stream leaves.

Observed fates come from durable places, never from a worker's memory (a ``kill -9`` loses that):
forwarded from distinct uuids on the accepted topic, dead-lettered from distinct (partition,
offset) on the DLQ, rate-limited from the limiter's replay logs in Redis. Whatever none of them
shows must have been suppressed; anything else is lost.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import DeadLetter, SpikeEventMessage
from schemas.redis_keys import project_tag
from schemas.tables import IssueFingerprint, SpikeEvent
from tests.reliability.kafka_io import read_all
from tests.reliability.streams import Planned
from tests.worker.processes import KafkaRecord, Topics
from worker.rate_limits import issue_bucket_key, project_bucket_key, replay_log_key

Position = tuple[int, int]  # (partition, offset) of an input message
IssueKey = tuple[int, str]  # (project_id, fingerprint)

FORWARDED = "forwarded"
SUPPRESSED = "suppressed"
RATE_LIMITED_ISSUE = "rate_limited_issue"
RATE_LIMITED_PROJECT = "rate_limited_project"
# Admitted by its issue's bucket: forwarded, or limited by the project's bucket (which of the
# two depends on how partitions interleave; only their numbers are known in advance).
ADMITTED = "forwarded or rate_limited_project"
_LIMIT_CODES = {"i": RATE_LIMITED_ISSUE, "p": RATE_LIMITED_PROJECT}


def dead_lettered(reason: str) -> str:
    return f"dead_lettered ({reason})"


@dataclass(frozen=True, slots=True)
class Limits:
    issue: int | None = None
    project: int | None = None


@dataclass(slots=True)
class Expected:
    fates: dict[Position, str] = field(default_factory=dict)
    project_limited: int = 0
    # Events counted towards spikes (every decoded event of a known project not suppressed).
    counted: Counter[IssueKey] = field(default_factory=Counter)
    # Tokens taken from each issue's bucket and each project's bucket.
    issue_tokens_taken: Counter[IssueKey] = field(default_factory=Counter)
    project_tokens_taken: Counter[int] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return len(self.fates)


def expect(sent: Sequence[tuple[Planned, KafkaRecord]], limits: Mapping[int, Limits]) -> Expected:
    """What the stream must become, from the messages in the order the broker stored them."""
    expected = Expected()
    partition_of: dict[IssueKey, int] = {}
    in_order = sorted(sent, key=lambda pair: (pair[1].partition, pair[1].offset))
    admitted_per_project: Counter[int] = Counter()
    for planned, record in in_order:
        position = (record.partition, record.offset)
        if planned.dead_letter_reason is not None:
            expected.fates[position] = dead_lettered(planned.dead_letter_reason.value)
            continue
        if planned.suppressed:
            expected.fates[position] = SUPPRESSED
            continue
        assert planned.project_id is not None and planned.fingerprint is not None
        key = (planned.project_id, planned.fingerprint)
        expected.counted[key] += 1
        project_limits = limits.get(planned.project_id, Limits())
        if project_limits.issue is not None:
            if partition_of.setdefault(key, record.partition) != record.partition:
                raise ValueError(f"limited issue {key} spans partitions: its order is unknown")
            if expected.issue_tokens_taken[key] >= project_limits.issue:
                expected.fates[position] = RATE_LIMITED_ISSUE
                continue
            expected.issue_tokens_taken[key] += 1
        if project_limits.project is None:
            expected.fates[position] = FORWARDED
            continue
        expected.fates[position] = ADMITTED
        admitted_per_project[planned.project_id] += 1
    for project_id, admitted in admitted_per_project.items():
        capacity = limits[project_id].project
        assert capacity is not None
        expected.project_tokens_taken[project_id] = min(admitted, capacity)
        expected.project_limited += max(admitted - capacity, 0)
    return expected


@dataclass(slots=True)
class Observed:
    fates: dict[Position, set[str]]
    # How many times each position was forwarded / dead-lettered (at-least-once may repeat).
    deliveries: Counter[Position]
    # Issue ids each forwarded uuid carried (one, however often it was forwarded).
    issue_ids_carried: dict[str, set[str]]
    spikes: list[SpikeEventMessage]


class _Forwarded(msgspec.Struct):
    uuid: str
    properties: dict[str, msgspec.Raw]


async def observe(
    bootstrap: str,
    topics: Topics,
    redis: Redis,
    sent: Sequence[tuple[Planned, KafkaRecord]],
) -> Observed:
    position_of = {
        planned.uuid: (record.partition, record.offset)
        for planned, record in sent
        if planned.uuid is not None
    }
    fates: dict[Position, set[str]] = defaultdict(set)
    deliveries: Counter[Position] = Counter()
    issue_ids: dict[str, set[str]] = defaultdict(set)

    decoder = msgspec.json.Decoder(_Forwarded)
    for record in await read_all(bootstrap, topics.accepted):
        event = decoder.decode(record.value)
        position = position_of[event.uuid]
        fates[position].add(FORWARDED)
        deliveries[position] += 1
        issue_ids[event.uuid].add(msgspec.json.decode(event.properties["$exception_issue_id"]))

    for record in await read_all(bootstrap, topics.dead_letter):
        letter = msgspec.json.decode(record.value, type=DeadLetter)
        position = (letter.partition, letter.offset)
        fates[position].add(dead_lettered(letter.reason.value))
        deliveries[position] += 1

    partitions = {record.partition for _, record in sent}
    projects = {planned.project_id for planned, _ in sent if planned.project_id is not None}
    for project_id in projects:
        for partition in partitions:
            log_key = replay_log_key(project_id, topics.exception_events, partition)
            for member in await redis.zrange(log_key, 0, -1):
                offset, code = member.decode().split(":")
                fates[(partition, int(offset))].add(_LIMIT_CODES[code])

    spikes = [
        msgspec.json.decode(record.value, type=SpikeEventMessage)
        for record in await read_all(bootstrap, topics.spikes)
    ]
    return Observed(dict(fates), deliveries, dict(issue_ids), spikes)


def unexplained(expected: Expected, observed: Observed) -> dict[Position, str]:
    """Every position whose observed fate is not the expected one, with what was seen."""
    wrong: dict[Position, str] = {}
    for position, fate in expected.fates.items():
        seen = observed.fates.get(position, set())
        if fate == SUPPRESSED:
            ok = not seen
        elif fate == ADMITTED:
            ok = seen in ({FORWARDED}, {RATE_LIMITED_PROJECT})
        else:
            ok = seen == {fate}
        if not ok:
            wrong[position] = f"expected {fate}, observed {sorted(seen) or 'nothing (lost?)'}"
    for position in observed.fates.keys() - expected.fates.keys():
        wrong[position] = f"not an input position, observed {sorted(observed.fates[position])}"
    return wrong


def outcome_totals(expected: Expected, observed: Observed) -> dict[str, int]:
    """Input events by final outcome (a duplicate delivery counts once)."""
    totals: Counter[str] = Counter()
    for position, fate in expected.fates.items():
        seen = observed.fates.get(position, set())
        if not seen:
            totals[SUPPRESSED if fate == SUPPRESSED else "lost"] += 1
        for outcome in seen:
            totals["dead_lettered" if outcome.startswith("dead_lettered") else outcome] += 1
    return dict(totals)


async def issue_ids(engine: AsyncEngine, keys: set[IssueKey]) -> dict[IssueKey, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                IssueFingerprint.project_id, IssueFingerprint.fingerprint, IssueFingerprint.issue_id
            )
        )
        found = {(r.project_id, r.fingerprint): str(r.issue_id) for r in rows}
    return {key: found[key] for key in keys if key in found}


async def spike_ids_stored(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return [str(spike_id) for spike_id in await connection.scalars(select(SpikeEvent.id))]


async def counted_in_redis(redis: Redis, project_id: int, issue_id: str) -> int:
    """Events of the issue in all of its spike buckets."""
    return await _sum_counters(redis, f"{project_tag(project_id)}:cnt:i:{issue_id}:*")


async def counted_for_project(redis: Redis, project_id: int) -> int:
    return await _sum_counters(redis, f"{project_tag(project_id)}:cnt:p:*")


async def _sum_counters(redis: Redis, pattern: str) -> int:
    keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
    return sum(int(value) for value in await redis.mget(keys)) if keys else 0


async def tokens_left(redis: Redis, key: str) -> float | None:
    value = await redis.hget(key, "tokens")
    return None if value is None else float(value)


async def assert_single_application(
    redis: Redis,
    engine: AsyncEngine,
    expected: Expected,
    limits: Mapping[int, Limits],
) -> None:
    """Spike buckets and token buckets hold exactly what one pass over the stream leaves: a
    replayed event counted or charged twice shows here even when its outcome was right."""
    ids = await issue_ids(engine, set(expected.counted))
    assert set(ids) == set(expected.counted), "issues missing from the database"
    counted = {key: await counted_in_redis(redis, key[0], ids[key]) for key in expected.counted}
    assert counted == dict(expected.counted)
    per_project: Counter[int] = Counter()
    for (project_id, _), count in expected.counted.items():
        per_project[project_id] += count
    assert {p: await counted_for_project(redis, p) for p in per_project} == dict(per_project)

    # A bucket never refills a whole token within a test, so the tokens left lie in
    # [capacity - taken, capacity - taken + 1); a second charge would take one more.
    for key, taken in expected.issue_tokens_taken.items():
        capacity = limits[key[0]].issue
        assert capacity is not None
        left = await tokens_left(redis, issue_bucket_key(key[0], ids[key]))
        assert left is not None and capacity - taken <= left < capacity - taken + 1, (key, left)
    for project_id, taken in expected.project_tokens_taken.items():
        capacity = limits[project_id].project
        assert capacity is not None
        left = await tokens_left(redis, project_bucket_key(project_id))
        assert left is not None and capacity - taken <= left < capacity - taken + 1, left


def spike_issue_ids(observed: Observed) -> list[str]:
    return sorted(spike.issue.id for spike in observed.spikes)


def issue_of(issue_ids_by_key: Mapping[IssueKey, str], project_id: int, fingerprint: str) -> str:
    return issue_ids_by_key[(project_id, fingerprint)]


def uuid_text(value: uuid.UUID) -> str:
    return str(value)
