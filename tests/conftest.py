"""Fixtures for the real local services started by ``scripts/services.sh`` (see ``.ci/run``).

A service that is not reachable fails the test loudly; nothing here skips or fakes a service.
"""

from __future__ import annotations

import os
import socket

import pytest

from schemas.settings import Settings

pytest_plugins = ["tests.support.own_server_fixtures"]


def _require_tcp(name: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(
            f"{name} is not reachable on {host}:{port} ({exc}); start it with "
            "`bash scripts/services.sh up` and `source .services/env`",
            pytrace=False,
        )


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host or "127.0.0.1"), int(port or default_port)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    first = settings.kafka_bootstrap_servers.split(",")[0]
    _require_tcp("Kafka", *_host_port(first, 9092))
    return settings.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(settings: Settings) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(settings.redis_url)
    _require_tcp("Redis", parsed.hostname or "127.0.0.1", parsed.port or 6379)
    return settings.redis_url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of the test PostgreSQL server (``TEST_POSTGRES_URL``)."""
    from urllib.parse import urlparse

    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.fail(
            "TEST_POSTGRES_URL is not set; run `bash scripts/services.sh up` and "
            "`source .services/env`",
            pytrace=False,
        )
    parsed = urlparse(url.replace("+asyncpg", ""))
    _require_tcp("PostgreSQL", parsed.hostname or "127.0.0.1", parsed.port or 5432)
    return url
