"""Fixtures that start a server of the test's own (``tests/support/own_servers.py``) and remove
it afterwards, whatever the test did to it. Registered for every test in ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.own_servers import OwnPostgres, OwnRedis


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A running PostgreSQL cluster of this test's own."""
    cluster = OwnPostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def _running_redis(server: OwnRedis) -> AsyncIterator[OwnRedis]:
    try:
        server.start()
        await server.wait_ready()
        yield server
    finally:
        server.remove()


@pytest.fixture
async def own_redis() -> AsyncIterator[OwnRedis]:
    """A running redis-server of this test's own that keeps nothing: a restart comes back empty."""
    async for server in _running_redis(OwnRedis()):
        yield server


@pytest.fixture
async def persistent_redis() -> AsyncIterator[OwnRedis]:
    """A running redis-server of this test's own with an append-only file synced on every write:
    a restart, even after ``kill -9``, comes back with all it had."""
    async for server in _running_redis(OwnRedis(persistent=True)):
        yield server
