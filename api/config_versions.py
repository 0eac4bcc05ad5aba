"""Tells the worker that a project's configuration changed: ``INCR`` of the project's
``config_version_key``, only ever after the database commit. The key carries the project's hash
tag, so on Redis Cluster the bump goes to the node that serves the project.

Bumping before the commit could let the worker reload the old rows and then never reload again.
"""

from __future__ import annotations

from api.errors import SERVER_ERROR, ApiError
from schemas.redis_client import REDIS_UNAVAILABLE, RedisClient
from schemas.redis_keys import config_version_key


async def bump_config_version(redis: RedisClient, project_id: int) -> int:
    """The project's new config version. Call after ``session.commit()``."""
    try:
        return int(await redis.incr(config_version_key(project_id)))
    except REDIS_UNAVAILABLE as exc:
        # The write is committed; say so, or a client would retry a create and duplicate it.
        raise ApiError(
            503,
            SERVER_ERROR,
            "config_not_propagated",
            "The change was saved, but Redis is unavailable so the worker was not told; "
            "it will apply it after the next configuration change that succeeds.",
        ) from exc
