"""Stack frames: list, retrieve, batch_get by raw id (optionally one symbol set), each with its
symbol set reference and release; DELETE answers 405."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.conftest import ProjectAccess
from tests.api.seeding import add_release, add_stack_frame, add_symbol_set

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
async def frames(
    sessionmaker: async_sessionmaker[AsyncSession], acme: ProjectAccess, globex: ProjectAccess
) -> dict[str, str]:
    release = await add_release(sessionmaker, acme.project_id, "1.2.0", "sha-120")
    bundle = await add_symbol_set(sessionmaker, acme.project_id, "https://cdn/app.js", release)
    orphan_maps = await add_symbol_set(sessionmaker, acme.project_id, "https://cdn/vendor.js", None)
    linked = await add_stack_frame(sessionmaker, acme.project_id, "raw-1", bundle, created_at=T0)
    vendor = await add_stack_frame(
        sessionmaker, acme.project_id, "raw-2", orphan_maps, created_at=T0 + timedelta(minutes=1)
    )
    bare = await add_stack_frame(
        sessionmaker, acme.project_id, "raw-3", created_at=T0 + timedelta(minutes=2)
    )
    await add_stack_frame(sessionmaker, globex.project_id, "raw-1")
    return {
        "linked": str(linked.id),
        "vendor": str(vendor.id),
        "bare": str(bare.id),
        "release": str(release.id),
        "bundle": str(bundle.id),
    }


async def test_list_is_newest_first(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    page = (await client.get(acme.url("stack_frames/"), headers=acme.read)).json()

    assert page["count"] == 3
    assert [frame["id"] for frame in page["results"]] == [
        frames["bare"],
        frames["vendor"],
        frames["linked"],
    ]


async def test_a_frame_carries_its_symbol_set_ref_and_release(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    response = await client.get(acme.url(f"stack_frames/{frames['linked']}/"), headers=acme.read)

    frame = response.json()
    assert response.status_code == 200
    assert frame["raw_id"] == "raw-1"
    assert frame["created_at"] == "2026-11-20T12:00:00Z"
    assert frame["contents"] == {"function": "index", "filename": "app/views.py", "lineno": 10}
    assert (frame["resolved"], frame["context"]) == (True, {"line": "raise TypeError()"})
    assert frame["symbol_set_ref"] == "https://cdn/app.js"
    assert frame["release"]["id"] == frames["release"]
    assert (frame["release"]["hash_id"], frame["release"]["version"]) == ("sha-120", "1.2.0")
    assert frame["release"]["team_id"] == acme.project_id


async def test_frames_without_symbol_set_or_release_say_null(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    vendor = await client.get(acme.url(f"stack_frames/{frames['vendor']}/"), headers=acme.read)
    bare = await client.get(acme.url(f"stack_frames/{frames['bare']}/"), headers=acme.read)

    assert (vendor.json()["symbol_set_ref"], vendor.json()["release"]) == (
        "https://cdn/vendor.js",
        None,
    )
    assert (bare.json()["symbol_set_ref"], bare.json()["release"]) == (None, None)


async def test_batch_get_returns_the_projects_frames_with_those_raw_ids(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    response = await client.post(
        acme.url("stack_frames/batch_get/"),
        json={"raw_ids": ["raw-1", "raw-3", "raw-unknown"]},
        headers=acme.read,
    )

    assert response.status_code == 200
    assert list(response.json()) == ["results"]
    assert [frame["id"] for frame in response.json()["results"]] == [
        frames["linked"],
        frames["bare"],
    ]


async def test_batch_get_narrows_to_one_symbol_set_by_ref_or_id(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    everything = ["raw-1", "raw-2", "raw-3"]
    by_ref = await client.post(
        acme.url("stack_frames/batch_get/"),
        json={"raw_ids": everything, "symbol_set": "https://cdn/vendor.js"},
        headers=acme.read,
    )
    by_id = await client.post(
        acme.url("stack_frames/batch_get/"),
        json={"raw_ids": everything, "symbol_set": frames["bundle"]},
        headers=acme.read,
    )

    assert [frame["id"] for frame in by_ref.json()["results"]] == [frames["vendor"]]
    assert [frame["id"] for frame in by_id.json()["results"]] == [frames["linked"]]


async def test_batch_get_without_raw_ids_or_with_an_empty_body_asks_for_nothing(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    empty_list = await client.post(
        acme.url("stack_frames/batch_get/"), json={"raw_ids": []}, headers=acme.read
    )
    empty_object = await client.post(
        acme.url("stack_frames/batch_get/"), json={}, headers=acme.read
    )
    empty_body = await client.post(acme.url("stack_frames/batch_get/"), headers=acme.read)

    assert (empty_list.status_code, empty_list.json()) == (200, {"results": []})
    assert (empty_object.status_code, empty_object.json()) == (200, {"results": []})
    assert (empty_body.status_code, empty_body.json()) == (200, {"results": []})


async def test_batch_get_of_more_than_1000_raw_ids_is_400(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    too_many = await client.post(
        acme.url("stack_frames/batch_get/"),
        json={"raw_ids": [str(n) for n in range(1001)]},
        headers=acme.read,
    )

    assert (too_many.status_code, too_many.json()["code"], too_many.json()["attr"]) == (
        400,
        "max_length",
        "raw_ids",
    )


async def test_batch_get_accepts_a_form_with_repeated_raw_ids(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    response = await client.post(
        acme.url("stack_frames/batch_get/"),
        content=b"raw_ids=raw-2&raw_ids=raw-3",
        headers={**acme.read, "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert [frame["id"] for frame in response.json()["results"]] == [
        frames["vendor"],
        frames["bare"],
    ]


async def test_delete_is_405_and_the_frame_stays(
    client: httpx.AsyncClient, acme: ProjectAccess, frames: dict[str, str]
) -> None:
    response = await client.delete(
        acme.url(f"stack_frames/{frames['linked']}/"), headers=acme.write
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json() == {
        "type": "invalid_request",
        "code": "method_not_allowed",
        "detail": 'Method "DELETE" not allowed.',
        "attr": None,
    }
    kept = await client.get(acme.url(f"stack_frames/{frames['linked']}/"), headers=acme.read)
    assert kept.status_code == 200
