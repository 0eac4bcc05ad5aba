"""The API on PostgreSQL while its database goes away (stopped, or frozen so that it never
answers) and comes back: every request that needs the database answers 503 in the standard error
shape, promptly and without a stack trace; the API recovers by itself when the database returns,
with nothing lost of what was committed.

The database is a cluster of this test's own (the shared server is never stopped).
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.main import DATABASE_COMMAND_TIMEOUT_SECONDS
from api.security_headers import SECURITY_HEADERS
from loadtest.api_server import running_api
from schemas.db import make_engine, make_sessionmaker
from tests.api.conftest import ProjectAccess, bearer, project_with_keys
from tests.support.databases import fresh_database
from tests.support.own_servers import OwnPostgres

DATABASE_UNAVAILABLE = {
    "type": "server_error",
    "code": "database_unavailable",
    "detail": "The database is unavailable; try again later.",
    "attr": None,
}
# A stopped database refuses connections at once; a frozen one is given up on after the API's
# timeouts (a ping, then a reconnect). Either way a client is answered, never left hanging.
MAX_OUTAGE_ANSWER_SECONDS = 3 * DATABASE_COMMAND_TIMEOUT_SECONDS
RECOVERY_TIMEOUT_SECONDS = 30.0
INTERNALS = ("Traceback", "asyncpg", "sqlalchemy", 'File "', "OperationalError", "Errno")

pytestmark = pytest.mark.postgres


@pytest.fixture
async def own_database(
    own_postgres: OwnPostgres, tmp_path: pathlib.Path
) -> AsyncIterator[tuple[str, ProjectAccess]]:
    """A migrated database on the test's own cluster, with one project and its keys."""
    async with fresh_database("postgresql", tmp_path, own_postgres.admin_url) as url:
        engine = make_engine(url)
        sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        access = await project_with_keys(sessionmaker, "acme")
        await engine.dispose()
        yield url, access


async def _during_outage(http: httpx.AsyncClient, access: ProjectAccess) -> list[httpx.Response]:
    """One request of each kind that needs the database: reads, writes, a key check."""
    return [
        await http.get(access.url("releases/"), headers=access.read),
        await http.post(
            access.url("releases/"), json={"version": "2", "project": "web"}, headers=access.write
        ),
        await http.patch(
            access.url("settings/update_settings/"),
            json={"project_rate_limit_value": 10},
            headers=access.write,
        ),
        await http.get(access.url("spike_events/"), headers=access.read),
        await http.post(
            access.url("stack_frames/batch_get/"), json={"raw_ids": ["a"]}, headers=access.read
        ),
        # An unknown key cannot be told from a known one without the database: 503, not 401.
        await http.get(access.url("releases/"), headers=bearer("swk_" + "x" * 40)),
    ]


async def test_requests_answer_503_while_the_database_is_down_and_recover_when_it_returns(
    own_postgres: OwnPostgres, own_database: tuple[str, ProjectAccess], api_redis_url: str
) -> None:
    url, acme = own_database
    with running_api(url, api_redis_url) as api:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
            created = await http.post(
                acme.url("releases/"), json={"version": "1", "project": "web"}, headers=acme.write
            )
            await asyncio.to_thread(own_postgres.stop)

            down = await _during_outage(http, acme)
            health_down = await http.get("/_health")

            await asyncio.to_thread(own_postgres.start)
            recovered = await _first_success(http, acme)
            after = await http.post(
                acme.url("releases/"), json={"version": "3", "project": "web"}, headers=acme.write
            )
            listed = await http.get(acme.url("releases/"), headers=acme.read)
        log = api.log_text()

    assert created.status_code == 201
    assert [(response.status_code, response.json()) for response in down] == [
        (503, DATABASE_UNAVAILABLE)
    ] * len(down)
    assert all(marker not in response.text for response in down for marker in INTERNALS), (
        "a 503 body gives away the server's internals"
    )
    assert all(
        response.headers.get(name) == value
        for response in down
        for name, value in SECURITY_HEADERS.items()
    )
    assert max(response.elapsed.total_seconds() for response in down) < MAX_OUTAGE_ANSWER_SECONDS
    assert (health_down.status_code, health_down.json()["detail"]) == (
        503,
        "Unavailable: database.",
    )
    assert recovered.status_code == 200
    assert after.status_code == 201
    # What was committed before the outage is still there; nothing written during it is.
    assert sorted(release["version"] for release in listed.json()["results"]) == ["1", "3"]
    assert "database unavailable" in log
    assert acme.write["Authorization"].removeprefix("Bearer ") not in log


async def _first_success(http: httpx.AsyncClient, access: ProjectAccess) -> httpx.Response:
    """The first 200 once the database is back; the API must get there without a restart."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while True:
        response = await http.get(access.url("releases/"), headers=access.read)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        assert (response.status_code, response.json()) == (503, DATABASE_UNAVAILABLE)
        await asyncio.sleep(0.2)


async def test_a_database_that_stops_answering_is_a_503_after_a_timeout_not_a_hung_request(
    own_postgres: OwnPostgres, own_database: tuple[str, ProjectAccess], api_redis_url: str
) -> None:
    url, acme = own_database
    with running_api(url, api_redis_url) as api:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as http:
            before = await http.get(acme.url("releases/"), headers=acme.read)
            await asyncio.to_thread(own_postgres.freeze)
            try:
                frozen = await http.get(acme.url("releases/"), headers=acme.read)
                health = await http.get("/_health")
            finally:
                await asyncio.to_thread(own_postgres.thaw)
            recovered = await _first_success(http, acme)

    assert before.status_code == 200
    assert (frozen.status_code, frozen.json()) == (503, DATABASE_UNAVAILABLE)
    assert frozen.elapsed.total_seconds() < MAX_OUTAGE_ANSWER_SECONDS
    assert (health.status_code, health.json()["detail"]) == (503, "Unavailable: database.")
    assert recovered.status_code == 200
