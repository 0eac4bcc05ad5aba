"""Random batches through the whole pipeline in-process, on the real Redis and a migrated SQLite
database: decode, projects, fingerprints, issues, frames, suppression rules of every kind,
counting, rate limits, spikes and the sink's encoding. Whatever hypothesis sends, every message
ends in exactly one outcome, every output message is valid against its topic's contract, and no
event becomes a processing error (on SQLite, which stores any text and any 64-bit integer, that
would be a bug in the worker, not a limit of the database).

tests/unit/test_decode.py fuzzes decode alone; this goes through every stage after it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy import insert

from bench.redis_cleanup import forget_projects
from schemas.db import make_engine
from schemas.events import AcceptedEvent, DeadLetter, DeadLetterReason
from schemas.tables import ErrorTrackingSettings, SpikeDetectionConfig, SuppressionRule
from tests.reliability.hostile import field_paths
from tests.reliability.streams import LIMIT_BUCKET_MINUTES
from tests.support.databases import fresh_database
from tests.worker.conftest import add_projects
from tests.worker.pipelines import KeptMessages, build_pipeline, new_project_ids
from worker import metrics
from worker.outcomes import Outcome
from worker.pipeline import Pipeline
from worker.records import SourceMessage
from worker.sinks import OutputTopics, output_messages

pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]

T = TypeVar("T")
TOPICS = OutputTopics(accepted="accepted", dead_letter="dead-letters")
KAFKA_MESSAGE_LIMIT_BYTES = 1_048_576

# Rules that read every derived key and most operators, so random events exercise the engine.
RULES: list[dict[str, Any]] = [
    {"key": "$exception_values", "operator": "regex", "value": "^(x|y)+$"},
    {"key": "$exception_types", "operator": "icontains", "value": "noise"},
    {"key": "$release", "operator": "semver_gt", "value": "1.2.3"},
    {"key": "$exception_sources", "operator": "not_regex", "value": "\\.py$"},
    {"key": "tier", "operator": "gt", "value": 3},
    {"key": "$exception_handled", "operator": "exact", "value": ["true"]},
    {"key": "$exception_functions", "operator": "is_set"},
    {"key": "$exception_releases", "operator": "semver_caret", "value": "^2.0.0"},
]


class LoopThread:
    """An event loop of the test's own in a thread: hypothesis calls the test synchronously, and
    pytest-asyncio's session loop must not be entered from inside one of its own tests."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class Harness:
    """One pipeline for the whole fuzz run, as one long-lived worker; offsets only grow."""

    def __init__(self, loop: LoopThread, pipeline: Pipeline, project_ids: list[int]) -> None:
        self.loop = loop
        self.pipeline = pipeline
        self.project_ids = project_ids
        self._offsets = itertools.count()

    def messages(self, payloads: list[bytes]) -> list[SourceMessage]:
        return [
            SourceMessage("in", offset % 3, offset, None, payload)
            for payload, offset in zip(payloads, self._offsets, strict=False)
        ]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Harness]:
    loop = LoopThread()
    configured, plain, _ = project_ids = new_project_ids(3)
    database = fresh_database("sqlite", tmp_path_factory.mktemp("fuzz"), None)
    url = loop.run(database.__aenter__())
    engine = make_engine(url)
    redis = Redis.from_url(redis_url)
    loop.run(_configure(engine, configured, plain))
    try:
        yield Harness(loop, build_pipeline(engine, redis, sent=KeptMessages()), project_ids)
    finally:
        loop.run(forget_projects(redis, project_ids[:2]))
        loop.run(redis.aclose())
        loop.run(engine.dispose())
        loop.run(database.__aexit__(None, None, None))
        loop.close()


async def _configure(engine: Any, configured: int, plain: int) -> None:
    await add_projects(engine, configured, plain)
    async with engine.begin() as connection:
        await connection.execute(
            insert(SuppressionRule),
            [
                {
                    "project_id": configured,
                    "filters": {"type": "AND", "values": [rule]},
                    "order_key": order,
                    "sampling_rate": 0.5,
                }
                for order, rule in enumerate(RULES)
            ],
        )
        await connection.execute(
            insert(ErrorTrackingSettings),
            [
                {
                    "project_id": configured,
                    "per_issue_rate_limit_value": 3,
                    "per_issue_rate_limit_bucket_size_minutes": LIMIT_BUCKET_MINUTES,
                    "project_rate_limit_value": 20,
                    "project_rate_limit_bucket_size_minutes": LIMIT_BUCKET_MINUTES,
                }
            ],
        )
        await connection.execute(
            insert(SpikeDetectionConfig),
            [{"project_id": configured, "threshold": 3, "multiplier": 2}],
        )


TEXT = st.text(max_size=20) | st.sampled_from(
    ["", "\x00", "noise", "xyxy", "1.2.4", "2.1.0", "app.py", "é🙂", "x" * 5_000]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
NOW = datetime.now(UTC).isoformat()
TIMESTAMPS = st.one_of(
    st.builds(
        lambda moment, offset: moment.isoformat() + offset,
        st.datetimes(),
        st.sampled_from(["Z", "+14:00", "-12:00", "", "+00:00"]),
    ),
    # Mostly now; sometimes the edges of the calendar, where converting to UTC leaves the years
    # datetime can hold.
    st.sampled_from([NOW] * 6 + ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]),
)


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


FRAMES = _optional(
    raw_id=TEXT,
    platform=TEXT,
    filename=TEXT,
    abs_path=TEXT,
    module=TEXT,
    function=TEXT,
    lineno=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    colno=st.integers(min_value=0, max_value=2**31),
    in_app=st.booleans(),
    resolved=st.booleans(),
    symbol_set_ref=TEXT,
    context=st.dictionaries(TEXT, JSON, max_size=2),
)
EXCEPTIONS = st.fixed_dictionaries(
    {"type": TEXT},
    optional={
        "value": TEXT,
        "module": TEXT,
        "mechanism": _optional(handled=st.booleans(), type=TEXT, synthetic=st.booleans()),
        "stacktrace": _optional(type=TEXT, frames=st.lists(FRAMES, max_size=4)),
    },
)


@st.composite
def events(draw: st.DrawFn, project_ids: list[int]) -> dict[str, Any]:
    properties = draw(
        st.fixed_dictionaries(
            {"$exception_list": st.lists(EXCEPTIONS, min_size=1, max_size=3)},
            optional={
                "$exception_fingerprint": TEXT,
                "$issue_name": TEXT,
                "$issue_description": TEXT,
                "$release": TEXT | st.sampled_from(["1.2.4", "2.3.0", "v3"]),
                "tier": JSON,
            },
        )
    )
    return draw(
        st.fixed_dictionaries(
            {
                "uuid": st.uuids().map(str),
                # Mostly known projects, so that most events reach the stages after decode.
                "project_id": st.sampled_from(project_ids[:2] * 4 + [project_ids[2]])
                | st.integers(-(2**64), 2**64),
                "timestamp": TIMESTAMPS,
                "properties": st.just(properties),
            },
            optional={"event": TEXT, "distinct_id": TEXT | st.none()},
        )
    )


@st.composite
def corrupted(draw: st.DrawFn, project_ids: list[int]) -> dict[str, Any]:
    """A valid-shaped event with one value anywhere in it replaced by any JSON at all."""
    document = draw(events(project_ids))
    paths = list(field_paths(document))
    path = paths[draw(st.integers(0, len(paths) - 1))]
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = draw(JSON)
    return document


def batches(project_ids: list[int]) -> st.SearchStrategy[list[bytes]]:
    """Valid-shaped events (so that most reach the stages after decode) shuffled together with
    corrupted events, arbitrary JSON and arbitrary bytes."""
    valid_shaped = events(project_ids).map(msgspec.json.encode)
    hostile = st.one_of(
        corrupted(project_ids).map(msgspec.json.encode),
        JSON.map(msgspec.json.encode),
        st.binary(max_size=64),
    )
    return st.tuples(
        st.lists(valid_shaped, min_size=1, max_size=8), st.lists(hostile, max_size=4)
    ).flatmap(lambda parts: st.permutations(parts[0] + parts[1]))


def test_random_batches_through_every_stage_end_in_one_valid_outcome_each(
    harness: Harness,
) -> None:
    loop = harness.loop
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=batches(harness.project_ids))
    def check(batch: list[bytes]) -> None:
        messages = harness.messages(batch)
        records = loop.run(harness.pipeline.process(messages))
        assert [r.source for r in records] == messages
        assert all(r.outcome is not None for r in records)
        reasons = [r.dead_letter.reason for r in records if r.dead_letter is not None]
        assert DeadLetterReason.PROCESSING_ERROR not in reasons, [
            (r.source.value, r.dead_letter) for r in records if r.dead_letter is not None
        ]
        output = output_messages(records, TOPICS)
        for message in output:
            assert len(message.value) <= KAFKA_MESSAGE_LIMIT_BYTES
            if message.topic == TOPICS.accepted:
                msgspec.json.decode(message.value, type=AcceptedEvent)
            else:
                msgspec.json.decode(message.value, type=DeadLetter)
        by_outcome = Counter(r.outcome for r in records)
        assert by_outcome[Outcome.FORWARDED] == sum(m.topic == TOPICS.accepted for m in output)
        assert by_outcome[Outcome.DEAD_LETTERED] == sum(
            m.topic == TOPICS.dead_letter for m in output
        )
        metrics.observe_batch(records, 0.0)
        outcomes.update(str(outcome) for outcome in by_outcome.elements())

    check()
    # The fuzz reached every outcome, so no stage was skipped by construction.
    assert set(outcomes) == {str(outcome) for outcome in Outcome}, outcomes
