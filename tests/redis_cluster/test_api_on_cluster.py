"""The API on Redis Cluster: a settings update of a project on each master answers 200 (its config
version is bumped on the master that serves the project), and the worker, reading the versions
of its batch's projects, reloads exactly those configs."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster
from sqlalchemy.ext.asyncio import AsyncEngine

from api import admin
from api.main import create_app
from schemas.db import make_sessionmaker
from schemas.redis_keys import config_version_key
from schemas.settings import Settings
from tests.api.conftest import ProjectAccess, bearer
from tests.redis_cluster.conftest import master_of
from tests.worker.conftest import add_projects
from tests.worker.pipelines import FakeClock
from worker.config import ProjectConfigCache

pytestmark = pytest.mark.redis_cluster


async def test_settings_updates_on_every_master_answer_200_and_reach_the_worker(
    engine: AsyncEngine,
    sqlite_url: str,
    cluster_url: str,
    cluster: RedisCluster,
    projects_on_masters: Callable[[int], list[int]],
) -> None:
    projects = projects_on_masters(1)
    assert len({master_of(cluster, p) for p in projects}) == 3
    await add_projects(engine, *projects)
    _, key = await admin.create_api_key(
        make_sessionmaker(engine),
        label="cluster",
        scopes=["error_tracking:write"],
        project_ids=projects,
    )
    access = [ProjectAccess(project, bearer(key), bearer(key)) for project in projects]
    worker_configs = ProjectConfigCache(engine, cluster, clock=FakeClock())
    await worker_configs.refresh(projects)
    before = await worker_configs.configs_for(projects)
    app = create_app(Settings(database_url=sqlite_url, redis_url=cluster_url, redis_cluster=True))

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        answers = [
            await http.patch(
                project.url("settings/update_settings/"),
                json={"project_rate_limit_value": 100 + n},
                headers=project.write,
            )
            for n, project in enumerate(access)
        ]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [await cluster.get(config_version_key(p)) for p in projects] == [b"1", b"1", b"1"]
    assert [before[p].rate_limits.project_value for p in projects] == [None, None, None]
    await worker_configs.refresh(projects)
    after = await worker_configs.configs_for(projects)
    assert [after[p].rate_limits.project_value for p in projects] == [100, 101, 102]
