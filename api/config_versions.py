"""Tells the worker that a project's configuration changed: ``HINCRBY`` of the project's field in
``CONFIG_VERSIONS_KEY``, only ever after the database commit.

Bumping before the commit could let the worker reload the old rows and then never reload again.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.errors import SERVER_ERROR, ApiError
from schemas.redis_keys import bump_config_version_args


async def bump_config_version(redis: Redis, project_id: int) -> int:
    """The project's new config version. Call after ``session.commit()``."""
    key, field = bump_config_version_args(project_id)
    try:
        return int(await redis.hincrby(key, field, 1))
    except RedisError as exc:
        # The write is committed; say so, or a client would retry a create and duplicate it.
        raise ApiError(
            503,
            SERVER_ERROR,
            "config_not_propagated",
            "The change was saved, but Redis is unavailable so the worker was not told; "
            "it will apply it after the next configuration change that succeeds.",
        ) from exc
