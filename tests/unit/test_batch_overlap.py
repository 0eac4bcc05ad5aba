"""Batches processed one at a time and in order while the next one is gathered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from worker.batch_overlap import process_overlapped


async def batches_of(
    *batches: list[int], gathered: list[int] | None = None
) -> AsyncIterator[list[int]]:
    for batch in batches:
        await asyncio.sleep(0)
        if gathered is not None:
            gathered.append(batch[0])
        yield batch


async def test_every_batch_is_processed_once_in_order_and_never_two_at_once() -> None:
    processed: list[list[int]] = []
    running = 0

    async def process(batch: list[int]) -> None:
        nonlocal running
        running += 1
        assert running == 1
        await asyncio.sleep(0.01)
        processed.append(batch)
        running -= 1

    await process_overlapped(batches_of([1], [2, 3], [4]), process)

    assert processed == [[1], [2, 3], [4]]
    assert running == 0


async def test_the_next_batch_is_gathered_while_one_is_processed() -> None:
    gathered: list[int] = []
    gathered_while_processing: list[list[int]] = []

    async def process(batch: list[int]) -> None:
        await asyncio.sleep(0.01)
        gathered_while_processing.append(list(gathered))

    await process_overlapped(batches_of([1], [2], [3], gathered=gathered), process)

    # While batch 1 was processed, batch 2 was already gathered; while 2 was, 3.
    assert gathered_while_processing == [[1, 2], [1, 2, 3], [1, 2, 3]]


async def test_a_failed_batch_raises_at_once_even_while_the_next_is_awaited() -> None:
    next_batch_requested = asyncio.Event()

    async def endless() -> AsyncIterator[list[int]]:
        yield [1]
        next_batch_requested.set()
        await asyncio.Event().wait()  # no more events for now
        yield [2]

    async def process(batch: list[int]) -> None:
        await next_batch_requested.wait()
        raise RuntimeError(f"batch {batch} failed")

    with pytest.raises(RuntimeError, match=r"batch \[1\] failed"):
        await asyncio.wait_for(process_overlapped(endless(), process), timeout=5)


async def test_cancelling_stops_the_batch_in_progress_and_the_gathering() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def process(batch: list[int]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(process_overlapped(batches_of([1], [2]), process))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
