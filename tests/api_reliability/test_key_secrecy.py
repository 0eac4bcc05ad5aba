"""A key's plaintext exists only in the answer to its creation: the database holds its SHA-256
and nothing else of it, no log line carries it (at DEBUG, with every SQL statement and its
parameters logged), and a revoked key stops working on the very next request, on every worker.
"""

from __future__ import annotations

import json
import logging
import pathlib

import httpx
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import admin
from api.auth import KEY_PREFIX, READ_SCOPE, WRITE_SCOPE, generate_key, hash_key
from loadtest.api_server import running_api
from tests.api.conftest import ProjectAccess, bearer

# Long enough that no 8 characters of a key can appear by chance, short enough that no useful
# part of it (a prefix, a middle) may appear either. A key's mask shows only its last 4.
REVEALING_CHARACTERS = 8
# The app at DEBUG and every SQL statement with its parameters, all to the child's output.
VERBOSE_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "DEBUG", "handlers": ["stderr"]},
    "loggers": {"sqlalchemy.engine": {"level": "INFO"}},
}


def revealed_parts(plaintext: str, haystack: str) -> list[str]:
    """Every run of REVEALING_CHARACTERS of the key's secret part found in ``haystack``."""
    secret = plaintext.removeprefix(KEY_PREFIX)
    windows = {
        secret[start : start + REVEALING_CHARACTERS]
        for start in range(len(secret) - REVEALING_CHARACTERS + 1)
    }
    return sorted(window for window in windows if window in haystack)


async def _all_stored_text(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """Every row of every table of the database, as text (tables found by reflection)."""
    rows: list[str] = []
    async with sessionmaker() as session:
        connection = await session.connection()
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        for table in tables:
            result = await connection.execute(text(f'SELECT * FROM "{table}"'))
            rows.extend(f"{table}: {row!r}" for row in result.all())
    return "\n".join(rows)


async def test_no_key_reaches_a_log_or_the_database_except_as_its_hash(
    database_url: str,
    api_redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
    caplog: pytest.LogCaptureFixture,
    tmp_path: pathlib.Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    created, plaintext = await admin.create_api_key(
        sessionmaker, label="ci", scopes=[WRITE_SCOPE], project_ids=[acme.project_id]
    )
    revoked, revoked_plaintext = await admin.create_api_key(
        sessionmaker, label="old", scopes=[READ_SCOPE], project_ids=[acme.project_id]
    )
    await admin.revoke_api_key(sessionmaker, revoked.id)
    creation_log = caplog.text
    log_config = tmp_path / "logging.json"
    log_config.write_text(json.dumps(VERBOSE_LOGGING))
    forged = generate_key()

    with running_api(database_url, api_redis_url, access_log=True, log_config=log_config) as api:
        async with httpx.AsyncClient(base_url=api.base_url) as http:
            answers = [
                await http.get(acme.url("releases/"), headers=bearer(plaintext)),
                await http.post(
                    acme.url("releases/"),
                    json={"version": "1", "project": "web"},
                    headers=bearer(plaintext),
                ),
                await http.get(acme.url("releases/"), headers=bearer(forged)),
                await http.get(acme.url("releases/"), headers=bearer(revoked_plaintext)),
                await http.get(acme.url("releases/"), headers={"Authorization": plaintext}),
                await http.get(f"/api/projects/{acme.project_id + 1}/x/", headers=bearer(forged)),
            ]
        server_log = api.log_text()
    stored = await _all_stored_text(sessionmaker)

    assert [answer.status_code for answer in answers] == [200, 201, 401, 401, 401, 404]
    # The logs were verbose enough to have shown a key: the statements looking keys up are there.
    assert hash_key(plaintext) in server_log
    assert hash_key(plaintext) in creation_log
    for key in (plaintext, revoked_plaintext, forged):
        assert revealed_parts(key, creation_log) == []
        assert revealed_parts(key, server_log) == []
        assert revealed_parts(key, stored) == []
    assert created.secure_value == hash_key(plaintext)
    assert hash_key(plaintext) in stored


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_revoked_key_fails_on_the_very_next_request_on_every_worker(
    database_url: str,
    api_redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    key, plaintext = await admin.create_api_key(
        sessionmaker, label="ci", scopes=[READ_SCOPE], project_ids=[acme.project_id]
    )
    url = acme.url("releases/")

    with running_api(database_url, api_redis_url, workers=2) as api:
        async with httpx.AsyncClient(base_url=api.base_url) as kept_alive:
            # Fresh connections spread over both workers; one connection stays open throughout.
            before = [(await kept_alive.get(url, headers=bearer(plaintext))).status_code]
            for _ in range(10):
                async with httpx.AsyncClient(base_url=api.base_url) as fresh:
                    before.append((await fresh.get(url, headers=bearer(plaintext))).status_code)

            await admin.revoke_api_key(sessionmaker, key.id)

            after = [(await kept_alive.get(url, headers=bearer(plaintext))).status_code]
            for _ in range(10):
                async with httpx.AsyncClient(base_url=api.base_url) as fresh:
                    after.append((await fresh.get(url, headers=bearer(plaintext))).status_code)
            others = (await kept_alive.get(url, headers=acme.read)).status_code

    assert before == [200] * 11
    assert after == [401] * 11
    assert others == 200
