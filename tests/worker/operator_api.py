"""What an operator does beside a running worker in the end-to-end tests: configure projects
through the real HTTP API (in-process, on the worker's database and Redis) and read it back, and
time a burst so that it does not straddle a spike bucket boundary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx

from api import admin
from api.main import create_app
from schemas.db import make_engine, make_sessionmaker
from schemas.settings import Settings


@asynccontextmanager
async def operator_api(
    database_url: str, redis_url: str, project_ids: Sequence[int]
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the API, authenticated with a read-write key for ``project_ids``."""
    engine = make_engine(database_url)
    try:
        _, key = await admin.create_api_key(
            make_sessionmaker(engine),
            label="operator",
            scopes=["error_tracking:read", "error_tracking:write"],
            project_ids=list(project_ids),
        )
    finally:
        await engine.dispose()
    app = create_app(Settings(database_url=database_url, redis_url=redis_url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {key}"},
        ) as client,
    ):
        yield client


def error_tracking(project_id: int) -> str:
    return f"/api/projects/{project_id}/error_tracking"


async def wait_for_room_in_bucket(bucket_seconds: int, seconds_needed: float) -> float:
    """Sleep until at least ``seconds_needed`` remain in the current spike bucket, so that a
    test's events and the worker's clock fall in the same bucket; return the time then."""
    remaining = bucket_seconds - time.time() % bucket_seconds
    if remaining < seconds_needed:
        await asyncio.sleep(remaining + 0.5)
    return time.time()
