"""Per-project configuration the worker needs, loaded from the database and cached between batches.

A project's entry is reloaded when its version in Redis (bumped by the API after each committed
write) changes; the versions of a batch's projects are read once per batch, one round trip per
Redis node. Every entry is also reloaded after ``CONFIG_RECHECK_SECONDS``, so a bump that never
reached Redis heals by itself. A project whose Redis node is unavailable keeps its cached config
until that recheck (fail open). Never writes configuration: the API owns it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.redis_client import RedisClient
from schemas.redis_keys import config_version_key
from worker import metrics
from worker.lru import LruCache
from worker.project_config import ProjectConfig, load_project_configs
from worker.redis_nodes import AnyPipeline, pipelined_by_node
from worker.retry import retry_infrastructure

log = logging.getLogger(__name__)

# A project created after its first events must become known quickly, without every event of an
# unknown id costing a query: each unknown id is looked up again at most this often.
UNKNOWN_PROJECT_RECHECK_SECONDS = 1.0
MAX_REMEMBERED_UNKNOWN_PROJECTS = 10_000
# What the projects.id column holds (32 bits): another id is unknown without asking, where asking
# would fail the event (PostgreSQL refuses to compare, SQLite to bind, an id out of range).
PROJECT_IDS = range(-(2**31), 2**31)
REDIS_DOWN_LOG_INTERVAL_SECONDS = 30.0
# The API answers 503 config_not_propagated when its version bump failed (Redis down): the change
# is committed but no worker was told. Reloading every project this often bounds how long it lasts.
CONFIG_RECHECK_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class _Loaded:
    version: str | None
    at: float


class ProjectConfigCache:
    def __init__(
        self,
        engine: AsyncEngine,
        redis_client: RedisClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._redis = redis_client
        self._clock = clock
        self._configs: dict[int, ProjectConfig] = {}
        # The version each cached project had when it was loaded, and when that was.
        self._loaded: dict[int, _Loaded] = {}
        # The versions read by the last refresh; None for a project never bumped.
        self._versions: dict[int, str | None] = {}
        self._unknown_checked_at: LruCache[int, float] = LruCache(MAX_REMEMBERED_UNKNOWN_PROJECTS)
        self._redis_down_logged_at: float | None = None

    async def refresh(self, project_ids: Collection[int]) -> None:
        """Read the config versions of ``project_ids`` (a batch's) and drop what changed or is
        due for its periodic recheck."""
        now = self._clock()
        for project_id, loaded in list(self._loaded.items()):
            if now - loaded.at >= CONFIG_RECHECK_SECONDS:
                self._forget(project_id)
        ids = [pid for pid in set(project_ids) if PROJECT_IDS.start <= pid < PROJECT_IDS.stop]
        keys = [config_version_key(project_id) for project_id in ids]

        def queue(pipe: AnyPipeline, index: int) -> None:
            pipe.get(keys[index])

        self._versions = {}
        failure: Exception | None = None
        results = await pipelined_by_node(self._redis, keys, queue)
        for project_id, result in zip(ids, results, strict=True):
            reply = result if isinstance(result, Exception) else result[0]
            if isinstance(reply, Exception):
                failure = reply
                continue
            self._versions[project_id] = None if reply is None else _text(reply)
            loaded = self._loaded.get(project_id)
            if loaded is not None and loaded.version != self._versions[project_id]:
                self._forget(project_id)
        if failure is None:
            self._redis_down_logged_at = None
        else:
            metrics.REDIS_FAIL_OPEN.labels(stage="config").inc()
            self._log_redis_down(failure)

    async def configs_for(self, project_ids: Collection[int]) -> dict[int, ProjectConfig]:
        """The config of each of ``project_ids`` that exists; unknown ids are left out."""
        now = self._clock()
        to_load = [
            project_id
            for project_id in set(project_ids)
            if project_id not in self._configs
            and PROJECT_IDS.start <= project_id < PROJECT_IDS.stop
            and not self._recently_unknown(project_id, now)
        ]
        if to_load:
            loaded = await retry_infrastructure(
                lambda: self._load(sorted(to_load)), dependency="database"
            )
            for project_id in to_load:
                if project_id in loaded:
                    self._configs[project_id] = loaded[project_id]
                    self._loaded[project_id] = _Loaded(self._versions.get(project_id), now)
                else:
                    self._unknown_checked_at.put(project_id, now)
        return {pid: self._configs[pid] for pid in project_ids if pid in self._configs}

    async def _load(self, project_ids: list[int]) -> Mapping[int, ProjectConfig]:
        async with self._engine.connect() as connection:
            return await load_project_configs(connection, project_ids)

    def _forget(self, project_id: int) -> None:
        del self._configs[project_id], self._loaded[project_id]

    def _recently_unknown(self, project_id: int, now: float) -> bool:
        checked_at = self._unknown_checked_at.get(project_id)
        return checked_at is not None and now - checked_at < UNKNOWN_PROJECT_RECHECK_SECONDS

    def _log_redis_down(self, exc: BaseException) -> None:
        now = self._clock()
        last = self._redis_down_logged_at
        if last is None or now - last >= REDIS_DOWN_LOG_INTERVAL_SECONDS:
            self._redis_down_logged_at = now
            log.warning("Redis unavailable (%r): keeping the cached configs of its projects", exc)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
