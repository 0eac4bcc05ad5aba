"""A short run of the load generator (loadtest/api_load.py): concurrent clients in this process,
the API under uvicorn in another, on PostgreSQL. Every answer is the expected one, and afterwards
each project holds exactly the releases and rules its clients' answers say it should: nothing lost
and nothing doubled under concurrency. Speed is measured by the full run, never asserted here.
"""

from __future__ import annotations

import asyncio
import http.client
import time
from urllib.parse import urlsplit

import httpx
import pytest

from loadtest.api_load import (
    OPERATION_WEIGHTS,
    ProjectKeys,
    prepare_projects,
    require_loopback,
    run_load,
)
from loadtest.api_server import ApiProcess, running_api

CLIENTS = 20
DURATION_SECONDS = 5.0
PROJECTS = 3
HTTPX_KEEPALIVE_EXPIRY_SECONDS = 5.0


async def _held(http: httpx.AsyncClient, project: ProjectKeys) -> tuple[int, int]:
    """How many releases and suppression rules the project holds, by the API's own count."""
    releases = await http.get(project.url("releases/"), headers=project.read)
    rules = await http.get(project.url("suppression_rules/"), headers=project.read)
    return releases.json()["count"], rules.json()["count"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_short_mixed_load_gets_no_errors_and_loses_no_writes(
    database_url: str, api_redis_url: str
) -> None:
    projects = await prepare_projects(database_url, PROJECTS)

    with running_api(database_url, api_redis_url, workers=2) as api:
        report = await run_load(
            api.base_url, projects, clients=CLIENTS, duration_seconds=DURATION_SECONDS, seed=1
        )
        async with httpx.AsyncClient(base_url=api.base_url) as http:
            held = {project.project_id: await _held(http, project) for project in projects}

    assert report.error_samples == []
    assert report.error_count == 0
    assert report.requests > CLIENTS
    assert set(report.by_operation) == set(OPERATION_WEIGHTS)
    assert held == {
        project.project_id: (
            report.releases[project.project_id],
            report.rules[project.project_id],
        )
        for project in projects
    }


def test_the_load_generator_refuses_any_target_but_loopback() -> None:
    require_loopback("http://127.0.0.1:8000")
    require_loopback("http://localhost:8000")
    require_loopback("http://[::1]:8000")
    with pytest.raises(ValueError, match="only targets loopback"):
        require_loopback("http://10.0.0.1:8000")
    with pytest.raises(ValueError, match="only targets loopback"):
        require_loopback("https://api.example.com")


def _two_requests_on_one_connection(base_url: str, idle_seconds: float) -> tuple[int, int]:
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port)
    try:
        connection.request("GET", "/_health")
        first = connection.getresponse()
        first.read()
        time.sleep(idle_seconds)
        connection.request("GET", "/_health")
        return first.status, connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_idle_connection_is_kept_open_longer_than_clients_keep_theirs(
    api_process: ApiProcess,
) -> None:
    """Otherwise a client reusing a connection just as the server closes it loses a request
    (uvicorn's default keep-alive of 5 s equals httpx's, and the load run saw that race)."""
    statuses = await asyncio.to_thread(
        _two_requests_on_one_connection, api_process.base_url, HTTPX_KEEPALIVE_EXPIRY_SECONDS + 1
    )

    assert statuses == (200, 200)
