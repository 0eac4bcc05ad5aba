"""Fixtures of the API reliability tests: the API tests' fixtures (fresh databases, the app
in-process or under uvicorn, two projects with keys) plus throwaway PostgreSQL and Redis servers
of our own, which these tests stop and start; the shared services are never touched.
"""

from __future__ import annotations

from tests.api.conftest import (  # noqa: F401  (fixtures used by the tests of this folder)
    acme,
    api_redis,
    api_redis_url,
    api_settings,
    client,
    globex,
    live_server,
    sessionmaker,
)
from tests.support.databases import database_url  # noqa: F401
