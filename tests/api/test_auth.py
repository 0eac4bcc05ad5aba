"""Keys and scopes: how keys are made and checked, and the access matrix over every operation
(no key, bad key, revoked key, missing scope, another project's key, another project's objects)."""

from __future__ import annotations

import hashlib
import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import admin
from api.auth import (
    READ_SCOPE,
    WRITE_SCOPE,
    generate_key,
    has_scope,
    hash_key,
    key_matches,
    mask_key,
    may_access_project,
)
from schemas.tables import PersonalApiKey
from tests.api.conftest import ProjectAccess, bearer
from tests.api.operations import OPERATIONS, WRITE_OPERATIONS
from tests.api.seeding import add_stack_frame


def test_a_generated_key_is_the_prefix_and_40_url_safe_characters() -> None:
    keys = {generate_key() for _ in range(100)}

    assert len(keys) == 100
    assert all(re.fullmatch(r"swk_[A-Za-z0-9_-]{40}", key) for key in keys)


def test_a_key_is_stored_as_its_sha256_and_only_the_same_key_matches() -> None:
    key = "swk_" + "a" * 40

    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key_matches(key, hash_key(key))
    assert not key_matches(key + "b", hash_key(key))
    assert mask_key(key) == "swk_...aaaa"


def test_write_scope_includes_read_and_star_includes_everything() -> None:
    assert has_scope([READ_SCOPE], READ_SCOPE)
    assert not has_scope([READ_SCOPE], WRITE_SCOPE)
    assert has_scope([WRITE_SCOPE], READ_SCOPE)
    assert has_scope(["*"], WRITE_SCOPE)
    assert not has_scope([], READ_SCOPE)
    assert not has_scope(["feature_flag:write"], READ_SCOPE)


def test_a_key_without_a_project_list_may_touch_every_project() -> None:
    assert may_access_project(None, 42)
    assert may_access_project([1, 42], 42)
    assert not may_access_project([1], 42)
    assert not may_access_project([], 42)


async def _answers(
    client: httpx.AsyncClient, access: ProjectAccess, headers: dict[str, str], operations: list
) -> dict[tuple[str, str], tuple[int, str]]:
    answers = {}
    for method, path, *_ in operations:
        response = await client.request(method, access.url(path), headers=headers, json={})
        answers[(method, path)] = (response.status_code, response.json()["code"])
    return answers


async def test_every_operation_without_a_key_is_401_not_authenticated(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    answers = await _answers(client, acme, {}, OPERATIONS)

    assert set(answers.values()) == {(401, "not_authenticated")}
    response = await client.get(acme.url("releases/"))
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"] == "authentication_error"


async def test_every_operation_with_an_unknown_key_is_401_authentication_failed(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    forged = bearer(generate_key())

    answers = await _answers(client, acme, forged, OPERATIONS)

    assert set(answers.values()) == {(401, "authentication_failed")}


async def test_a_basic_auth_header_is_not_a_key(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.get(
        acme.url("releases/"), headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )

    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


async def test_a_revoked_key_is_401_from_then_on(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    key, plaintext = await admin.create_api_key(
        sessionmaker, label="ci", scopes=[READ_SCOPE], project_ids=[acme.project_id]
    )
    before = await client.get(acme.url("releases/"), headers=bearer(plaintext))

    assert await admin.revoke_api_key(sessionmaker, key.id) is True
    after = await client.get(acme.url("releases/"), headers=bearer(plaintext))

    assert before.status_code == 200
    assert (after.status_code, after.json()["code"]) == (401, "authentication_failed")
    assert await admin.revoke_api_key(sessionmaker, key.id) is False


async def test_a_read_only_key_gets_403_on_every_write_and_200_on_reads(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    writes = await _answers(client, acme, acme.read, WRITE_OPERATIONS)
    read = await client.get(acme.url("releases/"), headers=acme.read)

    assert set(writes.values()) == {(403, "permission_denied")}
    denied = await client.post(acme.url("releases/"), headers=acme.read, json={})
    assert denied.json() == {
        "type": "authentication_error",
        "code": "permission_denied",
        "detail": "API key missing required scope 'error_tracking:write'",
        "attr": None,
    }
    assert read.status_code == 200


async def test_another_projects_key_gets_404_on_every_operation(
    client: httpx.AsyncClient, acme: ProjectAccess, globex: ProjectAccess
) -> None:
    answers = await _answers(client, acme, globex.write, OPERATIONS)

    assert set(answers.values()) == {(404, "not_found")}


async def test_a_project_that_does_not_exist_is_404_like_one_the_key_may_not_touch(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    _, everywhere = await admin.create_api_key(
        sessionmaker, label="ops", scopes=["*"], project_ids=None
    )
    missing = ProjectAccess(acme.project_id + 1000, bearer(everywhere), bearer(everywhere))
    huge = ProjectAccess(2**40, bearer(everywhere), bearer(everywhere))

    assert set((await _answers(client, missing, bearer(everywhere), OPERATIONS)).values()) == {
        (404, "not_found")
    }
    assert (await client.get(huge.url("releases/"), headers=huge.read)).status_code == 404
    assert (await client.get(acme.url("releases/"), headers=bearer(everywhere))).status_code == 200


async def test_project_a_objects_are_invisible_and_untouchable_under_project_b(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
    globex: ProjectAccess,
) -> None:
    release = (
        await client.post(
            acme.url("releases/"), json={"version": "1", "project": "web"}, headers=acme.write
        )
    ).json()
    rule = (await client.post(acme.url("suppression_rules/"), json={}, headers=acme.write)).json()
    frame = await add_stack_frame(sessionmaker, acme.project_id, raw_id="frame-a")

    attempts = [
        ("GET", f"releases/{release['id']}/"),
        ("PATCH", f"releases/{release['id']}/"),
        ("DELETE", f"releases/{release['id']}/"),
        ("GET", f"releases/hash/{release['hash_id']}/"),
        ("GET", f"suppression_rules/{rule['id']}/"),
        ("PATCH", f"suppression_rules/{rule['id']}/"),
        ("DELETE", f"suppression_rules/{rule['id']}/"),
        ("GET", f"stack_frames/{frame.id}/"),
    ]
    answers = await _answers(client, globex, globex.write, attempts)
    batch = await client.post(
        globex.url("stack_frames/batch_get/"), json={"raw_ids": ["frame-a"]}, headers=globex.read
    )
    reorder = await client.patch(
        globex.url("suppression_rules/reorder/"),
        json={"orders": {rule["id"]: 9}},
        headers=globex.write,
    )
    lists = [
        (await client.get(globex.url(path), headers=globex.read)).json()["count"]
        for path in ("releases/", "suppression_rules/", "stack_frames/")
    ]

    assert set(answers.values()) == {(404, "not_found")}
    assert batch.json() == {"results": []}
    assert (reorder.status_code, reorder.json()["attr"]) == (400, "orders")
    rule_now = await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)
    assert rule_now.json() == rule
    assert lists == [0, 0, 0]
    still_there = await client.get(acme.url(f"releases/{release['id']}/"), headers=acme.read)
    assert still_there.json() == release


async def test_using_a_key_records_when_it_was_last_used(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    key, plaintext = await admin.create_api_key(
        sessionmaker, label="cron", scopes=[READ_SCOPE], project_ids=None
    )

    await client.get(acme.url("releases/"), headers=bearer(plaintext))

    async with sessionmaker() as session:
        stored = await session.scalar(select(PersonalApiKey).where(PersonalApiKey.id == key.id))
    assert key.last_used_at is None
    assert stored is not None and stored.last_used_at is not None
    assert stored.secure_value == hash_key(plaintext)
    assert plaintext not in (stored.secure_value, stored.mask_value, stored.label)
