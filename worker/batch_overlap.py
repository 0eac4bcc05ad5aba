"""Process batches one at a time, in order, while the next batch is being gathered.

Faust gathers a batch on the same event loop as the pipeline runs; run one after the other, the
worker would sit idle through every wait of either (a fetch from the broker, a Redis round trip,
a delivery acknowledgement). Here they overlap. It never runs two batches at once, never starts a
batch before the one before it finished, and raises a batch's error as soon as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def process_overlapped(
    batches: AsyncIterator[T], process: Callable[[T], Awaitable[None]]
) -> None:
    """``process`` every batch of ``batches`` in order; returns when ``batches`` ends."""
    gathering: asyncio.Future[T] = asyncio.ensure_future(anext(batches))
    processing: asyncio.Future[None] | None = None
    try:
        while True:
            waiting = {gathering} if processing is None else {gathering, processing}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if processing is not None and processing.done():
                processing.result()
                processing = None
            if not gathering.done():
                continue
            try:
                batch = gathering.result()
            except StopAsyncIteration:
                if processing is not None:
                    await processing
                return
            if processing is not None:
                await processing
            processing = asyncio.ensure_future(process(batch))
            gathering = asyncio.ensure_future(anext(batches))
    finally:
        for pending in (gathering, processing):
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
