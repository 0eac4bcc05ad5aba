"""Limit/offset pagination: absolute next/previous links that keep other query parameters, the
first page's link without an offset, an oversized limit capped, nonsense refused."""

from __future__ import annotations

import httpx

from tests.api.conftest import ProjectAccess


async def _create_rules(client: httpx.AsyncClient, access: ProjectAccess, count: int) -> None:
    for _ in range(count):
        response = await client.post(
            access.url("suppression_rules/"), json={}, headers=access.write
        )
        assert response.status_code == 201


async def test_middle_page_links_both_ways(client: httpx.AsyncClient, acme: ProjectAccess) -> None:
    await _create_rules(client, acme, 5)
    base = f"http://testserver/api/projects/{acme.project_id}/error_tracking/suppression_rules/"

    page = (
        await client.get(acme.url("suppression_rules/?limit=2&offset=2"), headers=acme.read)
    ).json()

    assert [rule["order_key"] for rule in page["results"]] == [2, 3]
    assert page["count"] == 5
    assert page["next"] == f"{base}?limit=2&offset=4"
    assert page["previous"] == f"{base}?limit=2"


async def test_last_page_has_no_next_and_a_previous_with_offset(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    await _create_rules(client, acme, 5)
    base = f"http://testserver/api/projects/{acme.project_id}/error_tracking/suppression_rules/"

    page = (
        await client.get(acme.url("suppression_rules/?limit=2&offset=4"), headers=acme.read)
    ).json()

    assert [rule["order_key"] for rule in page["results"]] == [4]
    assert (page["next"], page["previous"]) == (None, f"{base}?limit=2&offset=2")


async def test_an_offset_past_the_end_is_an_empty_page(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    await _create_rules(client, acme, 2)

    page = (await client.get(acme.url("suppression_rules/?offset=50"), headers=acme.read)).json()

    assert (page["count"], page["results"], page["next"]) == (2, [], None)


async def test_a_limit_over_1000_is_capped_and_nonsense_is_400(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    await _create_rules(client, acme, 2)

    capped = await client.get(acme.url("suppression_rules/?limit=5000&offset=1"), headers=acme.read)
    negative = await client.get(acme.url("suppression_rules/?offset=-1"), headers=acme.read)
    text = await client.get(acme.url("suppression_rules/?limit=many"), headers=acme.read)

    assert capped.json()["previous"].endswith("?limit=1000")
    assert len(capped.json()["results"]) == 1
    assert (negative.status_code, negative.json()["attr"]) == (400, "offset")
    assert (text.status_code, text.json()["attr"]) == (400, "limit")
