"""Releases: create, list, retrieve (by id and by hash_id), update and delete, on both backends;
credentials in a git remote URL are neither stored nor shown."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.tables import Release
from tests.api.conftest import ProjectAccess
from tests.api.seeding import add_stack_frame, add_symbol_set

VERSION_IS_REQUIRED = {
    "type": "validation_error",
    "code": "required",
    "detail": "Version is required",
    "attr": "version",
}


async def create_release(
    client: httpx.AsyncClient, access: ProjectAccess, **fields: object
) -> dict:
    response = await client.post(access.url("releases/"), json=fields, headers=access.write)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_answers_201_with_the_release_and_defaults_hash_id_to_its_id(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.post(
        acme.url("releases/"),
        json={"version": "1.4.0", "project": "web", "metadata": {"commit": "abc123"}},
        headers=acme.write,
    )

    assert response.status_code == 201
    release = response.json()
    assert set(release) == {
        "id",
        "hash_id",
        "team_id",
        "created_at",
        "metadata",
        "version",
        "project",
    }
    assert release["hash_id"] == release["id"]
    assert release["team_id"] == acme.project_id
    assert (release["version"], release["project"]) == ("1.4.0", "web")
    assert release["metadata"] == {"commit": "abc123"}
    assert release["created_at"].endswith("Z")


async def test_create_keeps_a_given_hash_id_and_ignores_read_only_team_id(
    client: httpx.AsyncClient, acme: ProjectAccess, globex: ProjectAccess
) -> None:
    release = await create_release(
        client, acme, version="2.0", project="web", hash_id="sha-2", team_id=globex.project_id
    )

    assert release["hash_id"] == "sha-2"
    assert release["team_id"] == acme.project_id


async def test_a_hash_id_in_use_in_the_project_is_refused_but_free_in_another_project(
    client: httpx.AsyncClient, acme: ProjectAccess, globex: ProjectAccess
) -> None:
    await create_release(client, acme, version="1", project="web", hash_id="shared")

    duplicate = await client.post(
        acme.url("releases/"),
        json={"version": "2", "project": "web", "hash_id": "shared"},
        headers=acme.write,
    )
    elsewhere = await client.post(
        globex.url("releases/"),
        json={"version": "2", "project": "web", "hash_id": "shared"},
        headers=globex.write,
    )

    assert duplicate.status_code == 400
    assert duplicate.json()["code"] == "unique"
    assert duplicate.json()["attr"] == "hash_id"
    assert "already in use" in duplicate.json()["detail"]
    assert elsewhere.status_code == 201


async def test_hash_id_of_129_characters_is_refused(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    at_limit = await client.post(
        acme.url("releases/"),
        json={"version": "1", "project": "web", "hash_id": "h" * 128},
        headers=acme.write,
    )
    over = await client.post(
        acme.url("releases/"),
        json={"version": "1", "project": "web", "hash_id": "h" * 129},
        headers=acme.write,
    )

    assert at_limit.status_code == 201
    assert over.status_code == 400
    assert (over.json()["code"], over.json()["attr"]) == ("max_length", "hash_id")


@pytest.mark.parametrize(
    "body",
    [
        {"project": "web"},
        {"project": "web", "version": None},
        {"project": "web", "version": ""},
        {},
    ],
    ids=["missing", "null", "blank", "empty body"],
)
async def test_a_release_without_a_version_is_400_version_is_required(
    client: httpx.AsyncClient, acme: ProjectAccess, body: dict
) -> None:
    response = await client.post(acme.url("releases/"), json=body, headers=acme.write)

    assert (response.status_code, response.json()) == (400, VERSION_IS_REQUIRED)
    listed = await client.get(acme.url("releases/"), headers=acme.read)
    assert listed.json()["count"] == 0


async def test_a_form_without_a_version_is_400_version_is_required(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    blank = await client.post(
        acme.url("releases/"), data={"version": "", "project": "web"}, headers=acme.write
    )
    missing = await client.post(acme.url("releases/"), data={"project": "web"}, headers=acme.write)

    assert (blank.status_code, blank.json()) == (400, VERSION_IS_REQUIRED)
    assert (missing.status_code, missing.json()) == (400, VERSION_IS_REQUIRED)


async def test_project_is_required(client: httpx.AsyncClient, acme: ProjectAccess) -> None:
    no_project = await client.post(acme.url("releases/"), json={"version": "1"}, headers=acme.write)

    assert (no_project.status_code, no_project.json()) == (
        400,
        {
            "type": "validation_error",
            "code": "required",
            "detail": "This field is required.",
            "attr": "project",
        },
    )


@pytest.mark.parametrize(
    ("remote_url", "stored"),
    [
        (
            "https://user:token@github.com/acme/web.git",
            "https://github.com/acme/web.git",
        ),
        (
            "https://x-access-token:ghs_s3cr3t@github.com/acme/web.git",
            "https://github.com/acme/web.git",
        ),
        ("https://ghp_s3cr3t@github.com/acme/web.git", "https://github.com/acme/web.git"),
        ("ssh://git:p%40ss@git.acme.dev:2222/web.git", "ssh://git.acme.dev:2222/web.git"),
        ("https://u:p@ss@gitlab.acme.dev/web.git", "https://gitlab.acme.dev/web.git"),
        ("https://github.com/acme/web.git", "https://github.com/acme/web.git"),
        ("git@github.com:acme/web.git", "git@github.com:acme/web.git"),
        ("https://github.com/acme/web@v2.git", "https://github.com/acme/web@v2.git"),
    ],
)
async def test_credentials_in_the_git_remote_url_are_stripped_before_storing(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
    remote_url: str,
    stored: str,
) -> None:
    metadata = {"git": {"remote_url": remote_url, "branch": "main"}, "ci": "github"}
    expected = {"git": {"remote_url": stored, "branch": "main"}, "ci": "github"}

    release = await create_release(client, acme, version="1", project="web", metadata=metadata)

    assert release["metadata"] == expected
    fetched = await client.get(acme.url(f"releases/{release['id']}/"), headers=acme.read)
    assert fetched.json()["metadata"] == expected
    async with sessionmaker() as session:
        row = await session.scalar(select(Release).where(Release.id == uuid.UUID(release["id"])))
    assert row is not None and row.metadata_ == expected


async def test_an_update_strips_credentials_from_the_git_remote_url_too(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    release = await create_release(client, acme, version="1", project="web")

    response = await client.patch(
        acme.url(f"releases/{release['id']}/"),
        json={"metadata": {"git": {"remote_url": "https://bot:glpat-s3cr3t@gitlab.com/a/b.git"}}},
        headers=acme.write,
    )

    assert response.status_code == 204
    fetched = await client.get(acme.url(f"releases/{release['id']}/"), headers=acme.read)
    assert fetched.json()["metadata"] == {"git": {"remote_url": "https://gitlab.com/a/b.git"}}
    async with sessionmaker() as session:
        row = await session.scalar(select(Release).where(Release.id == uuid.UUID(release["id"])))
    assert row is not None and "s3cr3t" not in str(row.metadata_)


async def test_credentials_stored_before_are_never_shown(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    leaked = {"git": {"remote_url": "https://user:s3cr3t@github.com/acme/web.git"}}
    async with sessionmaker() as session:
        release = Release(
            team_id=acme.project_id, version="1", project="web", hash_id="old", metadata_=leaked
        )
        session.add(release)
        await session.commit()
    symbol_set = await add_symbol_set(sessionmaker, acme.project_id, "app.js.map", release)
    frame = await add_stack_frame(sessionmaker, acme.project_id, "raw-1", symbol_set)

    answers = [
        await client.get(acme.url(path), headers=acme.read)
        for path in (
            f"releases/{release.id}/",
            "releases/hash/old/",
            "releases/",
            f"stack_frames/{frame.id}/",
        )
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 200]
    assert all("s3cr3t" not in answer.text for answer in answers)
    assert answers[0].json()["metadata"] == {
        "git": {"remote_url": "https://github.com/acme/web.git"}
    }


async def test_create_accepts_an_urlencoded_form_like_curl_d(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.post(
        acme.url("releases/"),
        data={"version": "3.1", "project": "api", "metadata": '{"branch": "main"}'},
        headers=acme.write,
    )

    assert response.status_code == 201
    assert response.json()["version"] == "3.1"
    assert response.json()["metadata"] == {"branch": "main"}


async def test_list_is_paginated_newest_first(
    client: httpx.AsyncClient, acme: ProjectAccess, globex: ProjectAccess
) -> None:
    for version in ("1", "2", "3"):
        await create_release(client, acme, version=version, project="web")
    await create_release(client, globex, version="other", project="web")

    response = await client.get(acme.url("releases/?limit=2"), headers=acme.read)

    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 3
    assert [release["version"] for release in page["results"]] == ["3", "2"]
    assert page["next"] == (
        f"http://testserver/api/projects/{acme.project_id}/error_tracking/releases/"
        "?limit=2&offset=2"
    )
    assert page["previous"] is None


async def test_retrieve_by_id_and_by_hash_id(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    release = await create_release(client, acme, version="1.0", project="web", hash_id="deadbeef")

    by_id = await client.get(acme.url(f"releases/{release['id']}/"), headers=acme.read)
    by_hash = await client.get(acme.url("releases/hash/deadbeef/"), headers=acme.read)

    assert (by_id.status_code, by_id.json()) == (200, release)
    assert (by_hash.status_code, by_hash.json()) == (200, release)


async def test_unknown_or_malformed_release_ids_are_404(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    for path in (f"releases/{uuid.uuid4()}/", "releases/not-a-uuid/", "releases/hash/nothing/"):
        response = await client.get(acme.url(path), headers=acme.read)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


async def test_update_answers_204_and_changes_only_the_fields_sent(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    release = await create_release(client, acme, version="1.0", project="web", metadata={"a": 1})

    response = await client.patch(
        acme.url(f"releases/{release['id']}/"), json={"version": "1.0.1"}, headers=acme.write
    )

    assert response.status_code == 204
    assert response.content == b""
    updated = (await client.get(acme.url(f"releases/{release['id']}/"), headers=acme.read)).json()
    assert updated == {**release, "version": "1.0.1"}


async def test_update_with_null_hash_id_resets_it_to_the_release_id(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    release = await create_release(client, acme, version="1", project="web", hash_id="custom")

    response = await client.patch(
        acme.url(f"releases/{release['id']}/"), json={"hash_id": None}, headers=acme.write
    )

    assert response.status_code == 204
    updated = (await client.get(acme.url(f"releases/{release['id']}/"), headers=acme.read)).json()
    assert updated["hash_id"] == release["id"]


async def test_update_refuses_null_version_and_a_hash_id_in_use(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    await create_release(client, acme, version="1", project="web", hash_id="taken")
    release = await create_release(client, acme, version="2", project="web")

    null_version = await client.patch(
        acme.url(f"releases/{release['id']}/"), json={"version": None}, headers=acme.write
    )
    taken = await client.patch(
        acme.url(f"releases/{release['id']}/"), json={"hash_id": "taken"}, headers=acme.write
    )

    assert null_version.status_code == 400
    assert (null_version.json()["code"], null_version.json()["attr"]) == ("null", "version")
    assert taken.status_code == 400
    assert (taken.json()["code"], taken.json()["attr"]) == ("unique", "hash_id")


async def test_delete_answers_204_and_the_release_is_gone(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    release = await create_release(client, acme, version="1", project="web")

    deleted = await client.delete(acme.url(f"releases/{release['id']}/"), headers=acme.write)
    again = await client.get(acme.url(f"releases/{release['id']}/"), headers=acme.read)

    assert (deleted.status_code, deleted.content) == (204, b"")
    assert again.status_code == 404


async def test_a_hash_id_no_release_can_have_is_simply_not_found(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    for hash_id in ("%00", "h" * 129, "%F0%9F%92%A5"):
        response = await client.get(acme.url(f"releases/hash/{hash_id}/"), headers=acme.read)
        assert response.status_code == 404, hash_id
