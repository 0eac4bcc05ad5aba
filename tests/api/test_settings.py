"""Error tracking settings: created on first read, updated field by field, null removes a limit,
and every committed update bumps the project's config version in Redis."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from schemas.redis_keys import config_version_key
from tests.api.conftest import ProjectAccess

NO_LIMITS = {
    "project_rate_limit_value": None,
    "project_rate_limit_bucket_size_minutes": None,
    "per_issue_rate_limit_value": None,
    "per_issue_rate_limit_bucket_size_minutes": None,
}


async def test_first_read_creates_settings_without_limits(
    client: httpx.AsyncClient, acme: ProjectAccess, api_redis: Redis
) -> None:
    response = await client.get(acme.url("settings/retrieve_settings/"), headers=acme.read)

    assert (response.status_code, response.json()) == (200, NO_LIMITS)
    assert await api_redis.get(config_version_key(acme.project_id)) is None


async def test_update_answers_200_with_the_settings_and_keeps_fields_not_sent(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    first = await client.patch(
        acme.url("settings/update_settings/"),
        json={"project_rate_limit_value": 1000, "per_issue_rate_limit_value": 50},
        headers=acme.write,
    )
    second = await client.patch(
        acme.url("settings/update_settings/"),
        json={"per_issue_rate_limit_bucket_size_minutes": 5},
        headers=acme.write,
    )

    assert first.status_code == 200
    assert second.status_code == 200
    expected = {
        "project_rate_limit_value": 1000,
        "project_rate_limit_bucket_size_minutes": None,
        "per_issue_rate_limit_value": 50,
        "per_issue_rate_limit_bucket_size_minutes": 5,
    }
    assert second.json() == expected
    read_back = await client.get(acme.url("settings/retrieve_settings/"), headers=acme.read)
    assert read_back.json() == expected


async def test_null_removes_a_limit(client: httpx.AsyncClient, acme: ProjectAccess) -> None:
    await client.patch(
        acme.url("settings/update_settings/"),
        json={"project_rate_limit_value": 10},
        headers=acme.write,
    )

    response = await client.patch(
        acme.url("settings/update_settings/"),
        json={"project_rate_limit_value": None},
        headers=acme.write,
    )

    assert response.json() == NO_LIMITS


async def test_limits_below_one_or_not_integers_are_refused(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    zero = await client.patch(
        acme.url("settings/update_settings/"),
        json={"per_issue_rate_limit_value": 0},
        headers=acme.write,
    )
    text = await client.patch(
        acme.url("settings/update_settings/"),
        json={"project_rate_limit_bucket_size_minutes": "soon"},
        headers=acme.write,
    )
    too_big = await client.patch(
        acme.url("settings/update_settings/"),
        json={"project_rate_limit_value": 2**31},
        headers=acme.write,
    )

    assert (zero.status_code, zero.json()["code"], zero.json()["attr"]) == (
        400,
        "min_value",
        "per_issue_rate_limit_value",
    )
    assert (text.status_code, text.json()["attr"]) == (
        400,
        "project_rate_limit_bucket_size_minutes",
    )
    assert (too_big.status_code, too_big.json()["code"]) == (400, "max_value")


async def test_each_update_bumps_the_config_version_by_one(
    client: httpx.AsyncClient, acme: ProjectAccess, globex: ProjectAccess, api_redis: Redis
) -> None:
    for value in (10, 20, 30):
        await client.patch(
            acme.url("settings/update_settings/"),
            json={"project_rate_limit_value": value},
            headers=acme.write,
        )
    refused = await client.patch(
        acme.url("settings/update_settings/"),
        json={"project_rate_limit_value": -1},
        headers=acme.write,
    )

    assert refused.status_code == 400
    assert await api_redis.get(config_version_key(acme.project_id)) == "3"
    assert await api_redis.get(config_version_key(globex.project_id)) is None


async def test_update_accepts_a_form_and_an_empty_field_means_null(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.patch(
        acme.url("settings/update_settings/"),
        data={"project_rate_limit_value": "25", "per_issue_rate_limit_value": ""},
        headers=acme.write,
    )

    assert response.status_code == 200
    assert response.json()["project_rate_limit_value"] == 25
    assert response.json()["per_issue_rate_limit_value"] is None
