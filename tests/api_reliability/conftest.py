"""Fixtures of the API reliability tests: the API tests' fixtures (fresh databases, the app
in-process, two projects with keys), the API under uvicorn in a child process, and PostgreSQL and
Redis servers of our own, which these tests stop and start; the shared services are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.api_server import ApiProcess, running_api
from tests.api.conftest import (  # noqa: F401  (fixtures used by the tests of this folder)
    acme,
    api_redis,
    api_redis_url,
    api_settings,
    client,
    globex,
    sessionmaker,
)
from tests.support.databases import database_url  # noqa: F401


@pytest.fixture
def api_process(database_url: str, api_redis_url: str) -> Iterator[ApiProcess]:  # noqa: F811
    """The API served by uvicorn in a child process, on the test's database and Redis."""
    with running_api(database_url, api_redis_url) as api:
        yield api
