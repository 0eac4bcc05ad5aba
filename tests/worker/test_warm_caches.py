"""A warm worker asks the database nothing for events it has seen the like of (the steady-state
cost the benchmark measures), on the real databases: only new issues, frames and symbol sets
cost statements."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.tables import StackFrame
from tests.support.databases import counted_statements
from tests.worker.conftest import add_projects
from tests.worker.events import exception_event, records
from worker.frames import StackFrameRecorder
from worker.issues import IssueAssigner

PROJECT = 21


async def test_events_of_known_issues_and_stacks_cost_no_statement(engine: AsyncEngine) -> None:
    await add_projects(engine, PROJECT)
    issues = IssueAssigner(engine, cache_size=100)
    frames = StackFrameRecorder(engine, cache_size=100)
    first = records(exception_event(PROJECT, value="first"), exception_event(PROJECT, function="f"))
    await issues.assign(first)
    await frames.record(first)

    # Same issues and stacks, other messages (resolved frames: the message does not group).
    again = records(exception_event(PROJECT, value="again"), exception_event(PROJECT, function="f"))
    with counted_statements(engine) as executed:
        await issues.assign(again)
        await frames.record(again)

    assert executed == []
    assert [r.issue_id for r in again] == [r.issue_id for r in first]


async def test_a_new_stack_of_a_known_issue_stores_only_its_new_frame(engine: AsyncEngine) -> None:
    await add_projects(engine, PROJECT)
    frames = StackFrameRecorder(engine, cache_size=100)
    await frames.record(records(exception_event(PROJECT, function="index")))
    document = exception_event(PROJECT, function="index")
    extra = {**document["properties"]["$exception_list"][0]["stacktrace"]["frames"][0]}
    extra["function"] = "helper"
    document["properties"]["$exception_list"][0]["stacktrace"]["frames"].append(extra)

    with counted_statements(engine) as executed:
        await frames.record(records(document))

    assert len(executed) == 1  # one insert-if-absent of the frame not stored yet
    async with engine.connect() as connection:
        stored = await connection.scalar(select(func.count()).select_from(StackFrame))
    assert stored == 2
