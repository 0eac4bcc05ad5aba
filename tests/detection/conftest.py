"""The worker tests' fixtures (databases, Redis, project ids of each test's own) for the
detection tests that run a real worker."""

from tests.worker.conftest import project_ids, redis_client, sqlite_url

__all__ = ["project_ids", "redis_client", "sqlite_url"]
