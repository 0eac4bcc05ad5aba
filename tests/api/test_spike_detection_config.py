"""Spike detection config: created on first read with multiplier 10, threshold 500, snooze 10;
updated field by field (integers >= 1, never null); each update bumps the config version."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from schemas.redis_keys import CONFIG_VERSIONS_KEY
from tests.api.conftest import ProjectAccess

DEFAULTS = {"snooze_duration_minutes": 10, "multiplier": 10, "threshold": 500}


async def test_first_read_creates_the_reference_defaults(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.get(acme.url("spike_detection_config/"), headers=acme.read)

    assert (response.status_code, response.json()) == (200, DEFAULTS)


async def test_update_answers_200_with_the_config_and_keeps_fields_not_sent(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.patch(
        acme.url("spike_detection_config/update_config/"),
        json={"threshold": 50, "multiplier": 3},
        headers=acme.write,
    )

    expected = {"snooze_duration_minutes": 10, "multiplier": 3, "threshold": 50}
    assert (response.status_code, response.json()) == (200, expected)
    read_back = await client.get(acme.url("spike_detection_config/"), headers=acme.read)
    assert read_back.json() == expected


async def test_null_zero_and_fractions_are_refused(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    answers = []
    for body in ({"threshold": None}, {"multiplier": 0}, {"snooze_duration_minutes": 1.5}):
        response = await client.patch(
            acme.url("spike_detection_config/update_config/"), json=body, headers=acme.write
        )
        answers.append((response.status_code, response.json()["code"], response.json()["attr"]))

    assert answers == [
        (400, "null", "threshold"),
        (400, "min_value", "multiplier"),
        (400, "invalid", "snooze_duration_minutes"),
    ]
    unchanged = await client.get(acme.url("spike_detection_config/"), headers=acme.read)
    assert unchanged.json() == DEFAULTS


async def test_each_update_bumps_the_config_version_by_one(
    client: httpx.AsyncClient, acme: ProjectAccess, api_redis: Redis
) -> None:
    await client.get(acme.url("spike_detection_config/"), headers=acme.read)
    for threshold in (100, 200):
        await client.patch(
            acme.url("spike_detection_config/update_config/"),
            json={"threshold": threshold},
            headers=acme.write,
        )

    assert await api_redis.hget(CONFIG_VERSIONS_KEY, str(acme.project_id)) == "2"
