"""Releases: create, list, retrieve (by id and by hash_id), update and delete, on both backends."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import ProjectAccess


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


async def test_version_and_project_are_required(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    no_version = await client.post(
        acme.url("releases/"), json={"project": "web"}, headers=acme.write
    )
    no_project = await client.post(acme.url("releases/"), json={"version": "1"}, headers=acme.write)

    assert no_version.status_code == 400
    assert no_version.json() == {
        "type": "validation_error",
        "code": "required",
        "detail": "This field is required.",
        "attr": "version",
    }
    assert (no_project.status_code, no_project.json()["attr"]) == (400, "project")


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
