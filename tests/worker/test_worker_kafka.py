"""The worker end to end through the real Kafka broker: real worker processes consume a mixed
stream and the tests read the accepted topic, the DLQ, the database and the worker's /metrics."""

from __future__ import annotations

import asyncio
import base64
import pathlib
import uuid
from collections import Counter
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api import admin
from api.main import create_app
from schemas.db import make_engine, make_sessionmaker
from schemas.events import AcceptedEvent, DeadLetter, DeadLetterReason, Frame
from schemas.migrate import upgrade
from schemas.settings import Settings
from schemas.tables import Issue, IssueFingerprint, Release, StackFrame, SymbolSet
from tests.worker.conftest import add_projects
from tests.worker.events import encode, exception_event, poison_messages
from tests.worker.processes import (
    OUTCOMES,
    Topics,
    committed_offsets,
    create_topics,
    delete_topics,
    outcome_counts,
    produce,
    read_topic,
    wait_for,
)
from worker.frames import frame_raw_id

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(120)]

PROJECT_A, PROJECT_B, MISSING_PROJECT = 101, 202, 909
DELIVERY_TIMEOUT_SECONDS = 60


def payload_bytes(letter: DeadLetter) -> bytes:
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode()


def raw_id_of(event: dict[str, Any]) -> str:
    [exception] = event["properties"]["$exception_list"]
    [frame] = exception["stacktrace"]["frames"]
    return frame_raw_id(msgspec.convert(frame, Frame))


async def issue_rows(engine: AsyncEngine) -> dict[tuple[int, str], tuple[uuid.UUID, str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                IssueFingerprint.project_id,
                IssueFingerprint.fingerprint,
                Issue.id,
                Issue.name,
                Issue.description,
            ).join(Issue, Issue.id == IssueFingerprint.issue_id)
        )
        return {(r.project_id, r.fingerprint): (r.id, r.name, r.description) for r in rows}


async def test_a_mixed_stream_is_forwarded_dead_lettered_stored_and_counted(
    sqlite_url: str, kafka_bootstrap: str, redis_url: str, start_worker: Any
) -> None:
    engine = make_engine(sqlite_url)
    await add_projects(engine, PROJECT_A, PROJECT_B)
    async with engine.begin() as connection:
        release_id = uuid.uuid4()
        await connection.execute(
            insert(Release),
            [
                {
                    "id": release_id,
                    "team_id": PROJECT_A,
                    "hash_id": "rel-1",
                    "version": "1.0.0",
                    "project": "web",
                }
            ],
        )
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=2)
    try:
        same_issue_a = [
            exception_event(PROJECT_A, release="rel-1", symbol_set_ref="bundle-1", value=f"v{i}")
            for i in range(3)
        ]
        other_issue_a = exception_event(PROJECT_A, error_type="KeyError", function="save")
        same_issue_b = [exception_event(PROJECT_B) for _ in range(2)]
        manual_b = exception_event(
            PROJECT_B,
            function="checkout",
            **{
                "$exception_fingerprint": "checkout-failure",
                "$issue_name": "Checkout failed",
                "$issue_description": "payment provider down",
            },
        )
        valid = [*same_issue_a, other_issue_a, *same_issue_b, manual_b]
        poison = [
            *poison_messages(PROJECT_A),
            (DeadLetterReason.UNKNOWN_PROJECT, encode(exception_event(MISSING_PROJECT))),
        ]
        # Interleaved over both partitions, so that poison and valid events share batches.
        stream: list[tuple[DeadLetterReason | None, bytes]] = []
        for index in range(max(len(valid), len(poison))):
            if index < len(valid):
                stream.append((None, encode(valid[index])))
            if index < len(poison):
                stream.append(poison[index])
        sent = await produce(
            kafka_bootstrap,
            topics.exception_events,
            [(i % 2, b"key", value) for i, (_, value) in enumerate(stream)],
        )
        expected_reasons = {
            (record.partition, record.offset): reason
            for record, (reason, _) in zip(sent, stream, strict=True)
            if reason is not None
        }

        group = f"group-{uuid.uuid4().hex}"
        worker = start_worker(sqlite_url, topics, group)
        accepted = await read_topic(
            kafka_bootstrap,
            topics.accepted,
            expected=len(valid),
            timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
        )
        dead = await read_topic(
            kafka_bootstrap,
            topics.dead_letter,
            expected=len(poison),
            timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
        )

        # The accepted topic: exactly the valid events, as sent, plus their issue and fingerprint.
        assert sorted(msgspec.json.decode(r.value)["uuid"] for r in accepted) == sorted(
            e["uuid"] for e in valid
        ), worker.log_tail()
        by_uuid = {e["uuid"]: e for e in valid}
        forwarded: dict[str, dict[str, Any]] = {}
        for record in accepted:
            document = msgspec.json.decode(record.value)
            original = by_uuid[document["uuid"]]
            properties = document["properties"]
            assert document == {
                **original,
                "properties": {
                    **original["properties"],
                    "$exception_issue_id": properties["$exception_issue_id"],
                    "$exception_fingerprint": properties["$exception_fingerprint"],
                },
            }
            assert record.key == str(original["project_id"]).encode()
            msgspec.json.decode(record.value, type=AcceptedEvent)
            forwarded[document["uuid"]] = properties

        def issue_of(event: dict[str, Any]) -> str:
            return forwarded[event["uuid"]]["$exception_issue_id"]

        assert len({issue_of(e) for e in same_issue_a}) == 1
        assert len({issue_of(e) for e in same_issue_b}) == 1
        assert (
            len({issue_of(e) for e in (same_issue_a[0], other_issue_a, same_issue_b[0], manual_b)})
            == 4
        )
        assert forwarded[manual_b["uuid"]]["$exception_fingerprint"] == "checkout-failure"

        # The DLQ: exactly the poison, each with its reason and its original bytes.
        originals = {(r.partition, r.offset): r.value for r in sent}
        letters = [msgspec.json.decode(r.value, type=DeadLetter) for r in dead]
        assert {(d.partition, d.offset): d.reason for d in letters} == expected_reasons
        assert len(letters) == len(expected_reasons)
        for record, letter in zip(dead, letters, strict=True):
            assert record.key is None
            assert letter.topic == topics.exception_events
            original = originals[(letter.partition, letter.offset)]
            assert payload_bytes(letter) == (
                original[: len(payload_bytes(letter))] if letter.payload_truncated else original
            )
            assert letter.payload_truncated == (letter.reason is DeadLetterReason.MESSAGE_TOO_LARGE)

        # The database: one issue per fingerprint, named after its first event; frames per project.
        issues = await issue_rows(engine)
        assert {key: row[1:] for key, row in issues.items()} == {
            (PROJECT_A, forwarded[same_issue_a[0]["uuid"]]["$exception_fingerprint"]): (
                "TypeError",
                "v0",
            ),
            (PROJECT_A, forwarded[other_issue_a["uuid"]]["$exception_fingerprint"]): (
                "KeyError",
                "x is undefined",
            ),
            (PROJECT_B, forwarded[same_issue_b[0]["uuid"]]["$exception_fingerprint"]): (
                "TypeError",
                "x is undefined",
            ),
            (PROJECT_B, "checkout-failure"): ("Checkout failed", "payment provider down"),
        }
        for event, properties in ((e, forwarded[e["uuid"]]) for e in valid):
            key = (event["project_id"], properties["$exception_fingerprint"])
            assert str(issues[key][0]) == properties["$exception_issue_id"]
        async with engine.connect() as connection:
            assert await connection.scalar(select(func.count()).select_from(Issue)) == 4
            frames = {
                (row.project_id, row.raw_id): row.symbol_set_id
                for row in await connection.execute(select(StackFrame))
            }
            symbol_sets = (await connection.execute(select(SymbolSet))).all()
        assert set(frames) == {
            (PROJECT_A, raw_id_of(same_issue_a[0])),
            (PROJECT_A, raw_id_of(other_issue_a)),
            (PROJECT_B, raw_id_of(same_issue_b[0])),
            (PROJECT_B, raw_id_of(manual_b)),
        }
        [symbol_set] = symbol_sets
        assert (symbol_set.project_id, symbol_set.ref, symbol_set.release_id) == (
            PROJECT_A,
            "bundle-1",
            release_id,
        )
        assert frames[(PROJECT_A, raw_id_of(same_issue_a[0]))] == symbol_set.id

        # The API shows the worker's frames, linked through their symbol set to the release.
        _, read_key = await admin.create_api_key(
            make_sessionmaker(engine),
            label="reader",
            scopes=["error_tracking:read"],
            project_ids=[PROJECT_A],
        )
        api = create_app(Settings(database_url=sqlite_url, redis_url=redis_url))
        async with (
            api.router.lifespan_context(api),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=api), base_url="http://testserver"
            ) as http,
        ):
            response = await http.get(
                f"/api/projects/{PROJECT_A}/error_tracking/stack_frames/",
                headers={"Authorization": f"Bearer {read_key}"},
            )
        assert response.status_code == 200, response.text
        listed = {frame["raw_id"]: frame for frame in response.json()["results"]}
        assert set(listed) == {raw_id_of(same_issue_a[0]), raw_id_of(other_issue_a)}
        linked = listed[raw_id_of(same_issue_a[0])]
        assert (linked["symbol_set_ref"], linked["release"]["id"]) == ("bundle-1", str(release_id))
        assert listed[raw_id_of(other_issue_a)]["release"] is None

        # The outcome counters add up to the events consumed.
        expected_outcomes = {outcome: 0.0 for outcome in OUTCOMES}
        expected_outcomes["forwarded"] = len(valid)
        expected_outcomes["dead_lettered"] = len(poison)

        async def all_counted() -> bool:
            return (await worker.metrics())["spikewatch_events_consumed_total"] == len(stream)

        await wait_for("the metrics", all_counted, timeout_seconds=10, workers=[worker])
        samples = await worker.metrics()
        assert outcome_counts(samples) == expected_outcomes
        reasons = Counter(str(reason) for reason in expected_reasons.values())
        for reason in DeadLetterReason:
            sample = samples[f'spikewatch_dead_letters_total{{reason="{reason}"}}']
            assert sample == reasons.get(str(reason), 0), reason

        # Every offset was acked once its batch was durable, so the group commits the whole topic.
        end_offsets: dict[tuple[str, int], int] = {}
        for record in sent:
            end_offsets[(record.topic, record.partition)] = record.offset + 1

        async def all_committed() -> bool:
            return await committed_offsets(kafka_bootstrap, group) == end_offsets

        await wait_for("the offsets commit", all_committed, timeout_seconds=15, workers=[worker])
    finally:
        await delete_topics(kafka_bootstrap, topics)
        await engine.dispose()


@pytest.mark.postgres
async def test_two_workers_on_four_partitions_process_every_event_once_into_one_issue_each(
    postgres_database_url: str, kafka_bootstrap: str, start_worker: Any
) -> None:
    engine = make_engine(postgres_database_url)
    await add_projects(engine, PROJECT_A, PROJECT_B)
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=4)
    try:
        group = f"group-{uuid.uuid4().hex}"
        # One started as `faust -A worker.app worker`, one as `spikewatch worker`.
        workers = [
            start_worker(postgres_database_url, topics, group, entry_point)
            for entry_point in ("faust", "spikewatch")
        ]
        for worker in workers:
            await worker.wait_until_serving()

        async def partitions_split() -> bool:
            first, second = [await w.assigned_partitions() for w in workers]
            return bool(first) and bool(second) and first | second == {0, 1, 2, 3}

        # Produce only once the group settled, so that no rebalance replays a batch (which
        # at-least-once delivery would allow) and "exactly once" below is a fair demand.
        await wait_for(
            "both workers to share the partitions",
            partitions_split,
            timeout_seconds=45,
            workers=workers,
        )

        # Every fingerprint reaches every partition, so both workers race to create each issue.
        events = [
            exception_event(project, error_type=f"Error{kind}", value=f"{project}-{kind}-{n}")
            for n in range(4)
            for project in (PROJECT_A, PROJECT_B)
            for kind in range(10)
        ]
        await produce(
            kafka_bootstrap,
            topics.exception_events,
            [(i % 4, str(e["project_id"]).encode(), encode(e)) for i, e in enumerate(events)],
        )
        accepted = await read_topic(
            kafka_bootstrap,
            topics.accepted,
            expected=len(events),
            timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
        )

        documents = [msgspec.json.decode(r.value) for r in accepted]
        assert sorted(d["uuid"] for d in documents) == sorted(e["uuid"] for e in events)
        issue_by_fingerprint: dict[tuple[int, str], set[str]] = {}
        for document in documents:
            key = (document["project_id"], document["properties"]["$exception_fingerprint"])
            issue_by_fingerprint.setdefault(key, set()).add(
                document["properties"]["$exception_issue_id"]
            )
        assert len(issue_by_fingerprint) == 20
        assert all(len(issue_ids) == 1 for issue_ids in issue_by_fingerprint.values())

        issues = await issue_rows(engine)
        assert {key: {str(row[0])} for key, row in issues.items()} == issue_by_fingerprint
        async with engine.connect() as connection:
            # The losers of each race removed their proposed issue: no orphan issue remains.
            assert await connection.scalar(select(func.count()).select_from(Issue)) == 20

        async def all_counted() -> bool:
            counted = [(await w.metrics())["spikewatch_events_consumed_total"] for w in workers]
            return sum(counted) == len(events)

        await wait_for("the metrics", all_counted, timeout_seconds=10, workers=workers)
        per_worker = [outcome_counts(await w.metrics()) for w in workers]
        assert all(counts["forwarded"] > 0 for counts in per_worker)
        assert sum(counts["forwarded"] for counts in per_worker) == len(events)
    finally:
        await delete_topics(kafka_bootstrap, topics)
        await engine.dispose()


async def test_events_a_worker_could_not_store_are_processed_after_it_stopped(
    tmp_path: pathlib.Path, kafka_bootstrap: str, start_worker: Any
) -> None:
    # Not migrated yet: the first worker can look nothing up and waits, retrying the database.
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"
    topics = Topics.unique()
    await create_topics(kafka_bootstrap, topics, partitions=1)
    try:
        events = [exception_event(PROJECT_A, value=f"event {n}") for n in range(5)]
        await produce(
            kafka_bootstrap, topics.exception_events, [(0, None, encode(e)) for e in events]
        )
        group = f"group-{uuid.uuid4().hex}"
        crashing = start_worker(database_url, topics, group)
        await crashing.wait_until_serving()

        async def retrying() -> bool:
            samples = await crashing.metrics()
            return (
                samples.get('spikewatch_infrastructure_retries_total{dependency="database"}', 0) > 0
            )

        await wait_for("the database retries", retrying, timeout_seconds=30, workers=[crashing])
        # Stopped mid-outage: shutting down commits acked offsets, and none may be acked.
        crashing.stop()

        await asyncio.to_thread(upgrade, database_url)
        engine = make_engine(database_url)
        await add_projects(engine, PROJECT_A)
        await engine.dispose()
        start_worker(database_url, topics, group)
        accepted = await read_topic(
            kafka_bootstrap,
            topics.accepted,
            expected=len(events),
            timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
        )
    finally:
        await delete_topics(kafka_bootstrap, topics)

    assert sorted(msgspec.json.decode(r.value)["uuid"] for r in accepted) == sorted(
        e["uuid"] for e in events
    )
