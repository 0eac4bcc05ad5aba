"""Spike detection config: created on first read with multiplier 10, threshold 500, snooze 10 and
the mean detector; updated field by field (integers >= 1, a known detector, never null); each
update bumps the config version."""

from __future__ import annotations

from typing import get_args

import httpx
from redis.asyncio import Redis

from api.routes.spike_detection_config import SpikeDetector
from schemas.redis_keys import config_version_key
from schemas.tables import SPIKE_DETECTORS
from tests.api.conftest import ProjectAccess

DEFAULTS = {
    "snooze_duration_minutes": 10,
    "multiplier": 10,
    "threshold": 500,
    "detector": "mean",
}


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

    expected = {**DEFAULTS, "multiplier": 3, "threshold": 50}
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

    assert await api_redis.get(config_version_key(acme.project_id)) == "2"


def test_the_api_accepts_exactly_the_detectors_the_worker_knows() -> None:
    assert set(get_args(SpikeDetector)) == set(SPIKE_DETECTORS)


async def test_detector_round_trips_and_other_updates_keep_it(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    url = acme.url("spike_detection_config/update_config/")
    chosen = await client.patch(url, json={"detector": "adaptive"}, headers=acme.write)
    kept = await client.patch(url, json={"threshold": 40}, headers=acme.write)
    read_back = await client.get(acme.url("spike_detection_config/"), headers=acme.read)
    back_to_mean = await client.patch(url, json={"detector": "mean"}, headers=acme.write)

    adaptive = {**DEFAULTS, "detector": "adaptive"}
    assert (chosen.status_code, chosen.json()) == (200, adaptive)
    assert (kept.status_code, kept.json()) == (200, {**adaptive, "threshold": 40})
    assert read_back.json() == {**adaptive, "threshold": 40}
    assert back_to_mean.json() == {**DEFAULTS, "threshold": 40}


async def test_unknown_or_null_detectors_are_refused_and_change_nothing(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    answers = []
    for body in ({"detector": "median"}, {"detector": None}, {"detector": 1}):
        response = await client.patch(
            acme.url("spike_detection_config/update_config/"), json=body, headers=acme.write
        )
        answers.append((response.status_code, response.json()["attr"]))

    assert answers == [(400, "detector")] * 3
    unchanged = await client.get(acme.url("spike_detection_config/"), headers=acme.read)
    assert unchanged.json() == DEFAULTS
