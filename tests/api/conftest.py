"""Fixtures of the API tests: a fresh migrated database per test on SQLite and on PostgreSQL
(``database_url``), Redis database 7 (only the config-versions key is ever cleared), the app
behind an in-process client or a real uvicorn server, and two projects with their keys.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import admin
from api.main import create_app
from schemas.db import make_engine, make_sessionmaker
from schemas.settings import Settings
from tests.support.databases import database_url  # noqa: F401  (the parametrized fixture)

# The API tests' own Redis database, so clearing the config-versions hash cannot disturb the
# worker's tests, which use database 0.
API_REDIS_DB = 7


@dataclass(frozen=True)
class ProjectAccess:
    """A project and the ``Authorization`` headers of keys that may touch it."""

    project_id: int
    write: dict[str, str]
    read: dict[str, str]

    def url(self, path: str) -> str:
        return f"/api/projects/{self.project_id}/error_tracking/{path}"


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def api_redis_url(redis_url: str) -> str:
    return urlunparse(urlparse(redis_url)._replace(path=f"/{API_REDIS_DB}"))


@pytest.fixture
async def api_redis(api_redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(api_redis_url, decode_responses=True)
    await _forget_config_versions(client)
    yield client
    await _forget_config_versions(client)
    await client.aclose()


async def _forget_config_versions(client: Redis) -> None:
    # The API tests' projects reuse small ids in a database of their own; their versions must
    # start from nothing in each test.
    versions = [key async for key in client.scan_iter(match="{p:*}:config_version")]
    if versions:
        await client.delete(*versions)


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:  # noqa: F811
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def api_settings(database_url: str, api_redis_url: str, api_redis: Redis) -> Settings:  # noqa: F811
    return Settings(database_url=database_url, redis_url=api_redis_url)


@pytest.fixture
async def client(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        yield http


@pytest.fixture
async def live_server(api_settings: Settings) -> AsyncIterator[str]:
    """The app served by uvicorn on a free local port (in a thread); yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(api_settings), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started or not thread.is_alive():
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        listener.close()


async def project_with_keys(
    sessionmaker: async_sessionmaker[AsyncSession], name: str
) -> ProjectAccess:
    project = await admin.create_project(sessionmaker, name)
    _, write_key = await admin.create_api_key(
        sessionmaker,
        label=f"{name} write",
        scopes=["error_tracking:write"],
        project_ids=[project.id],
    )
    _, read_key = await admin.create_api_key(
        sessionmaker, label=f"{name} read", scopes=["error_tracking:read"], project_ids=[project.id]
    )
    return ProjectAccess(project.id, bearer(write_key), bearer(read_key))


@pytest.fixture
async def acme(sessionmaker: async_sessionmaker[AsyncSession]) -> ProjectAccess:
    return await project_with_keys(sessionmaker, "acme")


@pytest.fixture
async def globex(sessionmaker: async_sessionmaker[AsyncSession]) -> ProjectAccess:
    return await project_with_keys(sessionmaker, "globex")
