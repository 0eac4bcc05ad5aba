"""Issue insert-or-get and stack frame recording on the real databases (SQLite and PostgreSQL):
first sight creates, later sights reuse, concurrent workers agree, frames link to releases."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.db import make_engine
from schemas.events import Frame
from schemas.tables import Issue, IssueFingerprint, Release, StackFrame, SymbolSet
from tests.worker.conftest import add_projects
from tests.worker.events import exception_event, records
from worker.frames import RELEASE_RECHECK_SECONDS, StackFrameRecorder, frame_raw_id
from worker.issues import IssueAssigner

PROJECT, OTHER_PROJECT = 11, 12


async def count(engine: AsyncEngine, model: Any) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(model))


async def test_first_sight_of_a_fingerprint_creates_its_issue_named_after_the_first_event(
    engine: AsyncEngine,
) -> None:
    await add_projects(engine, PROJECT)
    batch = records(
        exception_event(PROJECT, value="first message"),
        exception_event(PROJECT, value="second message"),
        exception_event(PROJECT, error_type="KeyError"),
    )

    await IssueAssigner(engine, cache_size=10).assign(batch)

    assert batch[0].issue_id == batch[1].issue_id != batch[2].issue_id
    async with engine.connect() as connection:
        issues = {
            row.id: (row.project_id, row.name, row.description, row.status)
            for row in await connection.execute(select(Issue))
        }
    assert issues == {
        batch[0].issue_id: (PROJECT, "TypeError", "first message", "active"),
        batch[2].issue_id: (PROJECT, "KeyError", "x is undefined", "active"),
    }


async def test_a_known_fingerprint_reuses_its_issue_in_a_later_batch_and_another_worker(
    engine: AsyncEngine,
) -> None:
    await add_projects(engine, PROJECT, OTHER_PROJECT)
    first = records(exception_event(PROJECT))
    await IssueAssigner(engine, cache_size=10).assign(first)

    later = records(exception_event(PROJECT), exception_event(OTHER_PROJECT))
    await IssueAssigner(engine, cache_size=10).assign(later)

    assert later[0].issue_id == first[0].issue_id
    assert later[1].issue_id != first[0].issue_id  # the same fingerprint in another project
    assert await count(engine, Issue) == 2
    assert await count(engine, IssueFingerprint) == 2


async def test_issue_name_and_description_come_from_the_issue_properties_when_sent(
    engine: AsyncEngine,
) -> None:
    await add_projects(engine, PROJECT)
    batch = records(
        exception_event(PROJECT, **{"$issue_name": "Checkout", "$issue_description": "down"})
    )

    await IssueAssigner(engine, cache_size=10).assign(batch)

    async with engine.connect() as connection:
        issue = (await connection.execute(select(Issue))).one()
    assert (issue.id, issue.name, issue.description) == (batch[0].issue_id, "Checkout", "down")


async def test_concurrent_workers_agree_on_one_issue_per_fingerprint(
    engine: AsyncEngine, database_url: str
) -> None:
    await add_projects(engine, PROJECT)
    documents = [exception_event(PROJECT, error_type=f"Error{i}") for i in range(30)]
    engines = [make_engine(database_url) for _ in range(4)]
    try:
        batches = [records(*documents) for _ in engines]
        await asyncio.gather(
            *(
                IssueAssigner(worker_engine, cache_size=100).assign(batch)
                for worker_engine, batch in zip(engines, batches, strict=True)
            )
        )
    finally:
        for worker_engine in engines:
            await worker_engine.dispose()

    for position in range(len(documents)):
        assert len({batch[position].issue_id for batch in batches}) == 1
    assert await count(engine, IssueFingerprint) == 30
    assert await count(engine, Issue) == 30  # every losing proposal was removed


async def test_a_small_cache_forgets_but_the_database_still_answers(engine: AsyncEngine) -> None:
    await add_projects(engine, PROJECT)
    assigner = IssueAssigner(engine, cache_size=1)
    first = records(
        exception_event(PROJECT, error_type="A"), exception_event(PROJECT, error_type="B")
    )
    await assigner.assign(first)

    again = records(
        exception_event(PROJECT, error_type="A"), exception_event(PROJECT, error_type="B")
    )
    await assigner.assign(again)

    assert [r.issue_id for r in again] == [r.issue_id for r in first]
    assert await count(engine, Issue) == 2


async def stored_frames(engine: AsyncEngine) -> dict[tuple[int, str], Any]:
    async with engine.connect() as connection:
        return {
            (row.project_id, row.raw_id): row
            for row in await connection.execute(select(StackFrame))
        }


def raw_id_of(document: dict[str, Any]) -> str:
    frame = document["properties"]["$exception_list"][0]["stacktrace"]["frames"][0]
    return frame_raw_id(msgspec.convert(frame, Frame))


async def test_frames_are_stored_once_per_project_with_their_contents(engine: AsyncEngine) -> None:
    await add_projects(engine, PROJECT, OTHER_PROJECT)
    index = exception_event(PROJECT, function="index")
    batch = records(
        index, exception_event(PROJECT, function="index"), exception_event(OTHER_PROJECT)
    )
    recorder = StackFrameRecorder(engine, cache_size=100)

    await recorder.record(batch)
    await StackFrameRecorder(engine, cache_size=100).record(records(exception_event(PROJECT)))

    frames = await stored_frames(engine)
    assert set(frames) == {(PROJECT, raw_id_of(index)), (OTHER_PROJECT, raw_id_of(index))}
    stored = frames[(PROJECT, raw_id_of(index))]
    assert stored.contents == {
        "raw_id": raw_id_of(index),
        "platform": "python",
        "filename": "app/views.py",
        "function": "index",
        "lineno": 10,
        "colno": 4,
        "in_app": True,
    }
    assert (stored.resolved, stored.context, stored.symbol_set_id) == (True, None, None)


async def test_a_frame_sent_with_its_own_raw_id_is_stored_under_it(engine: AsyncEngine) -> None:
    await add_projects(engine, PROJECT)
    document = exception_event(PROJECT)
    document["properties"]["$exception_list"][0]["stacktrace"]["frames"][0]["raw_id"] = "js/42"

    await StackFrameRecorder(engine, cache_size=100).record(records(document))

    assert set(await stored_frames(engine)) == {(PROJECT, "js/42")}


async def test_a_symbol_set_links_to_its_release_once_that_exists_rechecking_at_most_every_30s(
    engine: AsyncEngine,
) -> None:
    await add_projects(engine, PROJECT)
    clock = [1000.0]
    recorder = StackFrameRecorder(engine, cache_size=100, clock=lambda: clock[0])
    before_release = exception_event(
        PROJECT, function="a", release="v1-hash", symbol_set_ref="bundle"
    )
    await recorder.record(records(before_release))

    release_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(Release),
            [
                {
                    "id": release_id,
                    "team_id": PROJECT,
                    "hash_id": "v1-hash",
                    "version": "1",
                    "project": "web",
                }
            ],
        )
    after_release = exception_event(
        PROJECT, function="b", release="v1-hash", symbol_set_ref="bundle"
    )
    clock[0] += RELEASE_RECHECK_SECONDS - 1
    await recorder.record(records(after_release))
    async with engine.connect() as connection:
        [symbol_set] = (await connection.execute(select(SymbolSet))).all()
    assert symbol_set.release_id is None  # looked up a moment ago: not yet again

    clock[0] += 1
    await recorder.record(records(after_release))
    async with engine.connect() as connection:
        [symbol_set] = (await connection.execute(select(SymbolSet))).all()
    assert (symbol_set.project_id, symbol_set.ref, symbol_set.release_id) == (
        PROJECT,
        "bundle",
        release_id,
    )
    frames = await stored_frames(engine)
    assert frames[(PROJECT, raw_id_of(before_release))].symbol_set_id == symbol_set.id
    assert frames[(PROJECT, raw_id_of(after_release))].symbol_set_id == symbol_set.id


async def test_a_symbol_set_without_a_known_release_is_stored_unlinked(engine: AsyncEngine) -> None:
    await add_projects(engine, PROJECT)

    await StackFrameRecorder(engine, cache_size=100).record(
        records(exception_event(PROJECT, release="never-created", symbol_set_ref="bundle"))
    )

    async with engine.connect() as connection:
        [symbol_set] = (await connection.execute(select(SymbolSet))).all()
    assert (symbol_set.ref, symbol_set.release_id) == ("bundle", None)


@pytest.mark.parametrize("workers", [3])
async def test_concurrent_recorders_store_each_frame_once(
    engine: AsyncEngine, database_url: str, workers: int
) -> None:
    await add_projects(engine, PROJECT)
    documents = [
        exception_event(PROJECT, function=f"f{i}", symbol_set_ref=f"s{i % 3}") for i in range(40)
    ]
    engines = [make_engine(database_url) for _ in range(workers)]
    try:
        await asyncio.gather(
            *(StackFrameRecorder(e, cache_size=100).record(records(*documents)) for e in engines)
        )
    finally:
        for worker_engine in engines:
            await worker_engine.dispose()

    assert await count(engine, StackFrame) == 40
    assert await count(engine, SymbolSet) == 3
