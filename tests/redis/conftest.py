"""Fixtures of the Redis-stage tests: a client of the real Redis and project ids of their own.

Each test gets project ids nobody else uses (a random base, then counting up), so tests never
see each other's keys; every key under those projects' hash tags is deleted afterwards.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from bench.redis_cleanup import forget_projects
from schemas.redis_keys import project_tag

_project_ids = itertools.count(random.SystemRandom().randrange(10**9, 2 * 10**9, 1000))

Snapshot = dict[bytes, Any]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _project_keys(redis: Redis, project_id: int) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{project_tag(project_id)}:*")]


@pytest.fixture
async def new_project_id(redis: Redis) -> AsyncIterator[Callable[[], int]]:
    """Call it for a fresh project id; the project's keys are removed after the test."""
    issued: list[int] = []

    def issue() -> int:
        issued.append(next(_project_ids))
        return issued[-1]

    yield issue
    await forget_projects(redis, issued)


@pytest.fixture
def project_id(new_project_id: Callable[[], int]) -> int:
    return new_project_id()


@pytest.fixture
def snapshot(redis: Redis) -> Callable[[int], Awaitable[Snapshot]]:
    """Every key of a project with its value (TTLs left out: they tick with the wall clock)."""

    async def take(project_id: int) -> Snapshot:
        state: Snapshot = {}
        for key in sorted(await _project_keys(redis, project_id)):
            kind = await redis.type(key)
            if kind == b"string":
                state[key] = await redis.get(key)
            elif kind == b"hash":
                state[key] = await redis.hgetall(key)
            elif kind == b"set":
                state[key] = await redis.smembers(key)
            elif kind == b"zset":
                state[key] = await redis.zrange(key, 0, -1, withscores=True)
            else:
                raise AssertionError(f"unexpected {kind!r} key {key!r}")
        return state

    return take
