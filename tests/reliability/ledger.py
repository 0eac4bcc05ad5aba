"""The books of a run: what each input message had to become, what it was observed to become,
and the Redis state a single application of the stream leaves.

Observed fates come from durable places, never from a worker's memory (a ``kill -9`` loses that):
forwarded from distinct uuids on the accepted topic, dead-lettered from distinct (partition,
offset) on the DLQ, rate-limited from the limiter's replay logs in Redis. Whatever none of them
shows must have been suppressed; anything else is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import DeadLetter, SpikeEventMessage
from schemas.redis_keys import project_tag
from schemas.tables import IssueFingerprint, SpikeEvent
from tests.reliability.kafka_io import Position, records_of
from tests.reliability.streams import Fate
from tests.worker.processes import Topics
from worker.rate_limits import issue_bucket_key, project_bucket_key, replay_log_key

IssueKey = tuple[int, str]  # (project_id, fingerprint)

FORWARDED = "forwarded"
SUPPRESSED = "suppressed"
RATE_LIMITED_ISSUE = "rate_limited_issue"
RATE_LIMITED_PROJECT = "rate_limited_project"
# Admitted by its issue's bucket: forwarded, or limited by the project's bucket (which of the
# two depends on how partitions interleave; only their numbers are known in advance).
ADMITTED = "forwarded or rate_limited_project"
_LIMIT_CODES = {"i": RATE_LIMITED_ISSUE, "p": RATE_LIMITED_PROJECT}
NOT_AN_INPUT: Position = (-1, -1)


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


def expect(
    sent: Sequence[tuple[Fate, Position]],
    limits: Mapping[int, Limits],
    failed_open: Collection[Position] = frozenset(),
) -> Expected:
    """What the stream must become, from the fates in the order the broker stored them.
    ``failed_open`` events met no Redis (it was down): neither counted nor charged."""
    expected = Expected()
    partition_of: dict[IssueKey, int] = {}
    admitted_per_project: Counter[int] = Counter()
    for fate, position in sorted(sent, key=lambda pair: pair[1]):
        if fate.dead_letter_reason is not None:
            expected.fates[position] = dead_lettered(fate.dead_letter_reason.value)
            if fate.fingerprint is not None:
                # Refused by the sink only, after it counted (its project has no limits).
                assert fate.project_id is not None and fate.project_id not in limits
                expected.counted[(fate.project_id, fate.fingerprint)] += 1
            continue
        if fate.suppressed:
            expected.fates[position] = SUPPRESSED
            continue
        if position in failed_open:
            expected.fates[position] = FORWARDED
            continue
        assert fate.project_id is not None and fate.fingerprint is not None
        key = (fate.project_id, fate.fingerprint)
        expected.counted[key] += 1
        project_limits = limits.get(fate.project_id, Limits())
        if project_limits.issue is not None:
            if partition_of.setdefault(key, position[0]) != position[0]:
                raise ValueError(f"limited issue {key} spans partitions: its order is unknown")
            if expected.issue_tokens_taken[key] >= project_limits.issue:
                expected.fates[position] = RATE_LIMITED_ISSUE
                continue
            expected.issue_tokens_taken[key] += 1
        if project_limits.project is None:
            expected.fates[position] = FORWARDED
            continue
        expected.fates[position] = ADMITTED
        admitted_per_project[fate.project_id] += 1
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
    sent: Sequence[tuple[Fate, Position]],
    seen_limited: Mapping[Position, str] | None = None,
) -> Observed:
    """What the stream became. ``seen_limited``: replay log entries read while the stream ran
    (``ReplayLogWatcher``), for streams long enough that the worker trimmed some since."""
    position_of = {fate.uuid: position for fate, position in sent if fate.uuid is not None}
    fates: dict[Position, set[str]] = defaultdict(set)
    deliveries: Counter[Position] = Counter()
    issue_ids: dict[str, set[str]] = defaultdict(set)

    decoder = msgspec.json.Decoder(_Forwarded)
    async for record in records_of(bootstrap, topics.accepted):
        event = decoder.decode(record.value)
        # A uuid nobody sent lands on a position no input has, and is reported as such.
        position = position_of.get(event.uuid, NOT_AN_INPUT)
        fates[position].add(FORWARDED)
        deliveries[position] += 1
        issue_ids[event.uuid].add(msgspec.json.decode(event.properties["$exception_issue_id"]))

    async for record in records_of(bootstrap, topics.dead_letter):
        letter = msgspec.json.decode(record.value, type=DeadLetter)
        position = (letter.partition, letter.offset)
        fates[position].add(dead_lettered(letter.reason.value))
        deliveries[position] += 1

    partitions = {partition for _, (partition, _) in sent}
    projects = {fate.project_id for fate, _ in sent if fate.project_id is not None}
    limited = await read_replay_logs(redis, topics.exception_events, projects, partitions)
    for position, outcome in {**(seen_limited or {}), **limited}.items():
        fates[position].add(outcome)

    spikes = [
        msgspec.json.decode(record.value, type=SpikeEventMessage)
        async for record in records_of(bootstrap, topics.spikes)
    ]
    return Observed(dict(fates), deliveries, dict(issue_ids), spikes)


async def read_replay_logs(
    redis: Redis, topic: str, projects: Collection[int], partitions: Collection[int]
) -> dict[Position, str]:
    """The rate-limited events the limiter's replay logs hold now, with how each was limited."""
    limited: dict[Position, str] = {}
    for project_id in projects:
        for partition in partitions:
            log_key = replay_log_key(project_id, topic, partition)
            for member in await redis.zrange(log_key, 0, -1):
                offset, code = member.decode().split(":")
                limited[(partition, int(offset))] = _LIMIT_CODES[code]
    return limited


class ReplayLogWatcher:
    """Reads the replay logs every second while a long stream runs: the worker trims an entry
    10,000 offsets after writing it (worker.rate_limits.REPLAY_WINDOW_OFFSETS), far more than it
    processes per partition in a second, so nothing is trimmed unseen."""

    def __init__(
        self, redis: Redis, topic: str, projects: Collection[int], partitions: Collection[int]
    ) -> None:
        self.seen: dict[Position, str] = {}
        self._read = lambda: read_replay_logs(redis, topic, projects, partitions)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReplayLogWatcher:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        while True:
            # Redis may be down or hung on purpose; the limiter writes nothing meanwhile.
            with contextlib.suppress(RedisError, OSError):
                self.seen |= await self._read()
            await asyncio.sleep(1.0)


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


async def _sum_counters(redis: Redis, pattern: str) -> int:
    keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
    return sum(int(value) for value in await redis.mget(keys)) if keys else 0


async def spike_counters(redis: Redis) -> tuple[Counter[tuple[int, str]], Counter[int]]:
    """Every spike counter in Redis, summed over buckets, in one pass over the keyspace: events
    by (project, issue id) and by project."""
    by_issue: Counter[tuple[int, str]] = Counter()
    by_project: Counter[int] = Counter()
    keys = [key.decode() async for key in redis.scan_iter(match="{p:*}:cnt:*", count=10_000)]
    for start in range(0, len(keys), 10_000):
        chunk = keys[start : start + 10_000]
        for key, value in zip(chunk, await redis.mget(chunk), strict=True):
            if value is None:  # expired between the scan and the read
                continue
            # {p:<project>}:cnt:i:<issue>:<bucket> or {p:<project>}:cnt:p:<bucket>
            tag, _, kind, *rest = key.removeprefix("{p:").split(":")
            project_id = int(tag.removesuffix("}"))
            if kind == "i":
                by_issue[(project_id, rest[0])] += int(value)
            else:
                by_project[project_id] += int(value)
    return by_issue, by_project


async def tokens_left(redis: Redis, keys: Sequence[str]) -> list[float | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "tokens")
        values = await pipe.execute()
    return [None if value is None else float(value) for value in values]


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
    by_issue, by_project = await spike_counters(redis)
    projects = {project_id for project_id, _ in expected.counted}
    counted = {key: by_issue[(key[0], ids[key])] for key in expected.counted}
    assert counted == dict(expected.counted)
    per_project: Counter[int] = Counter()
    for (project_id, _), count in expected.counted.items():
        per_project[project_id] += count
    assert {p: by_project[p] for p in projects} == dict(per_project)

    # A bucket never refills a whole token within a test, so the tokens left lie in
    # [capacity - taken, capacity - taken + 1); a second charge would take one more.
    issue_keys = list(expected.issue_tokens_taken)
    lefts = await tokens_left(redis, [issue_bucket_key(p, ids[(p, f)]) for p, f in issue_keys])
    for key, left in zip(issue_keys, lefts, strict=True):
        capacity, taken = limits[key[0]].issue, expected.issue_tokens_taken[key]
        assert capacity is not None and left is not None, key
        assert capacity - taken <= left < capacity - taken + 1, (key, left)
    project_keys = list(expected.project_tokens_taken)
    lefts = await tokens_left(redis, [project_bucket_key(p) for p in project_keys])
    for project_id, left in zip(project_keys, lefts, strict=True):
        capacity, taken = limits[project_id].project, expected.project_tokens_taken[project_id]
        assert capacity is not None and left is not None, project_id
        assert capacity - taken <= left < capacity - taken + 1, (project_id, left)


def spike_issue_ids(observed: Observed) -> list[str]:
    return sorted(spike.issue.id for spike in observed.spikes)
