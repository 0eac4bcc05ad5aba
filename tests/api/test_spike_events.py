"""Spike events: newest first, each with its issue; filters by issue(s) and date range, blank ones
ignored; ordering by detected_at, computed_baseline or current_bucket_value, anything else falling
back to newest first; only the project's own spikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.conftest import ProjectAccess
from tests.api.seeding import add_issue, add_spike_event

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
async def spikes(
    sessionmaker: async_sessionmaker[AsyncSession], acme: ProjectAccess, globex: ProjectAccess
) -> dict[str, str]:
    """Three spikes of two acme issues and one of a globex issue; returns ids by name."""
    type_error = await add_issue(sessionmaker, acme.project_id, "TypeError", "x is undefined")
    key_error = await add_issue(sessionmaker, acme.project_id, "KeyError", "'user'")
    foreign = await add_issue(sessionmaker, globex.project_id, "ValueError", "nope")
    oldest = await add_spike_event(sessionmaker, type_error, T0, 12.5, 600)
    middle = await add_spike_event(sessionmaker, key_error, T0 + timedelta(hours=1), 3.0, 900)
    newest = await add_spike_event(sessionmaker, type_error, T0 + timedelta(hours=2), 40.0, 700)
    await add_spike_event(sessionmaker, foreign, T0 + timedelta(hours=3), 1.0, 800)
    return {
        "oldest": str(oldest.id),
        "middle": str(middle.id),
        "newest": str(newest.id),
        "type_error": str(type_error.id),
        "key_error": str(key_error.id),
    }


async def _ids(client: httpx.AsyncClient, access: ProjectAccess, query: str) -> list[str]:
    response = await client.get(access.url(f"spike_events/{query}"), headers=access.read)
    assert response.status_code == 200, response.text
    return [event["id"] for event in response.json()["results"]]


async def test_list_is_newest_first_and_each_spike_carries_its_issue(
    client: httpx.AsyncClient, acme: ProjectAccess, spikes: dict[str, str]
) -> None:
    response = await client.get(acme.url("spike_events/"), headers=acme.read)

    page = response.json()
    assert (page["count"], page["next"], page["previous"]) == (3, None, None)
    assert [event["id"] for event in page["results"]] == [
        spikes["newest"],
        spikes["middle"],
        spikes["oldest"],
    ]
    assert page["results"][2] == {
        "id": spikes["oldest"],
        "issue": {"id": spikes["type_error"], "name": "TypeError", "description": "x is undefined"},
        "detected_at": "2026-11-20T12:00:00Z",
        "computed_baseline": 12.5,
        "current_bucket_value": 600,
    }


async def test_filter_by_issue_id_or_comma_separated_issue_ids(
    client: httpx.AsyncClient, acme: ProjectAccess, spikes: dict[str, str]
) -> None:
    one = await _ids(client, acme, f"?issue_id={spikes['key_error']}")
    both = await _ids(client, acme, f"?issue_ids={spikes['key_error']},{spikes['type_error']}")

    assert one == [spikes["middle"]]
    assert both == [spikes["newest"], spikes["middle"], spikes["oldest"]]


async def test_date_range_is_inclusive_at_both_ends(
    client: httpx.AsyncClient, acme: ProjectAccess, spikes: dict[str, str]
) -> None:
    from_middle = await _ids(client, acme, "?date_from=2026-11-20T13:00:00Z")
    up_to_middle = await _ids(client, acme, "?date_to=2026-11-20T13:00:00%2B00:00")
    just_middle = await _ids(
        client, acme, "?date_from=2026-11-20T13:00:00Z&date_to=2026-11-20T13:00:00Z"
    )

    assert from_middle == [spikes["newest"], spikes["middle"]]
    assert up_to_middle == [spikes["middle"], spikes["oldest"]]
    assert just_middle == [spikes["middle"]]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("detected_at", ["oldest", "middle", "newest"]),
        ("-detected_at", ["newest", "middle", "oldest"]),
        ("computed_baseline", ["middle", "oldest", "newest"]),
        ("-computed_baseline", ["newest", "oldest", "middle"]),
        ("current_bucket_value", ["oldest", "newest", "middle"]),
        ("-current_bucket_value", ["middle", "newest", "oldest"]),
    ],
)
async def test_order_by_each_allowed_field_both_ways(
    client: httpx.AsyncClient,
    acme: ProjectAccess,
    spikes: dict[str, str],
    order_by: str,
    expected: list[str],
) -> None:
    assert await _ids(client, acme, f"?order_by={order_by}") == [spikes[name] for name in expected]


@pytest.mark.parametrize(
    "query", ["?date_to=&issue_ids=&order_by=", "?issue_id=&date_from=&date_to=&issue_ids="]
)
async def test_blank_filters_are_ignored(
    client: httpx.AsyncClient, acme: ProjectAccess, spikes: dict[str, str], query: str
) -> None:
    unfiltered = await client.get(acme.url("spike_events/"), headers=acme.read)
    blank = await client.get(acme.url(f"spike_events/{query}"), headers=acme.read)

    assert (blank.status_code, blank.json()) == (200, unfiltered.json())
    assert [event["id"] for event in blank.json()["results"]] == [
        spikes["newest"],
        spikes["middle"],
        spikes["oldest"],
    ]


@pytest.mark.parametrize("order_by", ["bogus", "name", "-", "--detected_at", "issue"])
async def test_an_unknown_order_by_falls_back_to_newest_first(
    client: httpx.AsyncClient, acme: ProjectAccess, spikes: dict[str, str], order_by: str
) -> None:
    unordered = await client.get(acme.url("spike_events/"), headers=acme.read)
    response = await client.get(
        acme.url("spike_events/"), params={"order_by": order_by}, headers=acme.read
    )

    assert (response.status_code, response.json()) == (200, unordered.json())
    assert [event["id"] for event in response.json()["results"]] == [
        spikes["newest"],
        spikes["middle"],
        spikes["oldest"],
    ]


async def test_pages_link_to_each_other(
    client: httpx.AsyncClient, acme: ProjectAccess, spikes: dict[str, str]
) -> None:
    base = f"http://testserver/api/projects/{acme.project_id}/error_tracking/spike_events/"

    second = await client.get(
        acme.url("spike_events/?order_by=detected_at&limit=1&offset=1"), headers=acme.read
    )

    page = second.json()
    assert [event["id"] for event in page["results"]] == [spikes["middle"]]
    assert page["next"] == f"{base}?order_by=detected_at&limit=1&offset=2"
    assert page["previous"] == f"{base}?order_by=detected_at&limit=1"


async def test_bad_filters_are_400_naming_the_parameter(
    client: httpx.AsyncClient, acme: ProjectAccess, spikes: dict[str, str]
) -> None:
    answers = []
    for query in (
        "?issue_id=abc",
        f"?issue_ids={spikes['key_error']},abc",
        "?date_from=yesterday",
        "?date_to=0001-01-01T00:00:00%2B05:00",
        "?limit=0",
    ):
        response = await client.get(acme.url(f"spike_events/{query}"), headers=acme.read)
        answers.append((response.status_code, response.json()["attr"]))

    assert answers == [
        (400, "issue_id"),
        (400, "issue_ids"),
        (400, "date_from"),
        (400, "date_to"),
        (400, "limit"),
    ]
