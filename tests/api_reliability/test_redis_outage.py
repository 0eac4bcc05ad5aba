"""The API while its Redis goes away (stopped, or frozen so that it never answers) and comes
back: reads never need Redis and keep answering;
a configuration write is committed but answers 503 ``config_not_propagated`` (as documented),
so a client knows the worker was not told and does not retry into a duplicate; once Redis is
back, writes propagate again without restarting the API.

Redis is a server of this test's own (the shared one is never stopped).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.asyncio import Redis

from api.main import REDIS_TIMEOUT_SECONDS
from loadtest.api_server import running_api
from schemas.redis_keys import config_version_key
from tests.api.conftest import ProjectAccess
from tests.support.own_servers import OwnRedis

CONFIG_NOT_PROPAGATED = {
    "type": "server_error",
    "code": "config_not_propagated",
    "detail": "The change was saved, but Redis is unavailable so the worker was not told; "
    "it will apply it after the next configuration change that succeeds.",
    "attr": None,
}
# Redis commands time out after REDIS_TIMEOUT_SECONDS (api.main); allow for a slow machine.
MAX_FROZEN_ANSWER_SECONDS = 3 * REDIS_TIMEOUT_SECONDS
READS = (
    "releases/",
    "settings/retrieve_settings/",
    "spike_detection_config/",
    "spike_events/",
    "stack_frames/",
    "suppression_rules/",
)


async def _config_version(redis_url: str, project_id: int) -> int | None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        value = await client.get(config_version_key(project_id))
        return None if value is None else int(value)
    finally:
        await client.aclose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_reads_keep_working_and_config_writes_say_they_were_not_propagated(
    database_url: str, own_redis: OwnRedis, acme: ProjectAccess
) -> None:
    with running_api(database_url, own_redis.url) as api:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
            before = await http.patch(
                acme.url("settings/update_settings/"),
                json={"project_rate_limit_value": 100},
                headers=acme.write,
            )
            version_before = await _config_version(own_redis.url, acme.project_id)
            await asyncio.to_thread(own_redis.stop)

            reads = [await http.get(acme.url(path), headers=acme.read) for path in READS]
            settings_write = await http.patch(
                acme.url("settings/update_settings/"),
                json={"project_rate_limit_value": 200},
                headers=acme.write,
            )
            rule_write = await http.post(
                acme.url("suppression_rules/"), json={"sampling_rate": 0.5}, headers=acme.write
            )
            release_write = await http.post(
                acme.url("releases/"), json={"version": "1", "project": "web"}, headers=acme.write
            )
            saved_settings = await http.get(
                acme.url("settings/retrieve_settings/"), headers=acme.read
            )
            saved_rules = await http.get(acme.url("suppression_rules/"), headers=acme.read)
            health_down = await http.get("/_health")

            await asyncio.to_thread(own_redis.start)
            after = await http.patch(
                acme.url("settings/update_settings/"),
                json={"project_rate_limit_value": 300},
                headers=acme.write,
            )
            version_after = await _config_version(own_redis.url, acme.project_id)
            health_up = await http.get("/_health")

    assert before.status_code == 200
    assert version_before == 1
    assert [response.status_code for response in reads] == [200] * len(READS)
    assert (settings_write.status_code, settings_write.json()) == (503, CONFIG_NOT_PROPAGATED)
    assert (rule_write.status_code, rule_write.json()) == (503, CONFIG_NOT_PROPAGATED)
    # Releases are not worker configuration: they never needed Redis.
    assert release_write.status_code == 201
    assert saved_settings.json()["project_rate_limit_value"] == 200
    assert [rule["sampling_rate"] for rule in saved_rules.json()["results"]] == [0.5]
    assert (health_down.status_code, health_down.json()["detail"]) == (503, "Unavailable: redis.")
    assert (after.status_code, after.json()["project_rate_limit_value"]) == (200, 300)
    # The restarted Redis kept nothing, so the first bump after the outage starts it at 1.
    assert version_after == 1
    assert health_up.status_code == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_redis_that_stops_answering_costs_a_config_write_a_timeout_not_a_hang(
    database_url: str, own_redis: OwnRedis, acme: ProjectAccess
) -> None:
    with running_api(database_url, own_redis.url) as api:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as http:
            await asyncio.to_thread(own_redis.freeze)
            try:
                write = await http.patch(
                    acme.url("settings/update_settings/"),
                    json={"project_rate_limit_value": 200},
                    headers=acme.write,
                )
                read = await http.get(acme.url("settings/retrieve_settings/"), headers=acme.read)
            finally:
                await asyncio.to_thread(own_redis.thaw)
            after = await http.patch(
                acme.url("settings/update_settings/"),
                json={"project_rate_limit_value": 300},
                headers=acme.write,
            )

    assert (write.status_code, write.json()) == (503, CONFIG_NOT_PROPAGATED)
    assert write.elapsed.total_seconds() < MAX_FROZEN_ANSWER_SECONDS
    assert (read.status_code, read.json()["project_rate_limit_value"]) == (200, 200)
    assert after.status_code == 200
    # The timed-out bump was already in Redis' socket and lands when it resumes: one reload more
    # for the worker, never one less. The 503 only promised that the API could not confirm it.
    assert await _config_version(own_redis.url, acme.project_id) == 2
