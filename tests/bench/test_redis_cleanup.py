"""The bench deletes every Redis key of its projects at the end of a run, and only those."""

from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis

from bench.redis_cleanup import forget_projects
from schemas.redis_keys import config_version_key, project_tag

pytestmark = pytest.mark.redis


async def test_every_key_of_the_bench_projects_goes_and_no_other(redis_url: str) -> None:
    base = random.SystemRandom().randrange(3 * 10**9, 4 * 10**9, 1000)
    bench_projects, other = [base, base + 1], base + 2
    client = Redis.from_url(redis_url)
    try:
        for project_id in [*bench_projects, other]:
            tag = project_tag(project_id)
            for n in range(1_500):  # more than one UNLINK chunk for the first two
                await client.set(f"{tag}:issue:{n}", 1)
            await client.incr(config_version_key(project_id))

        removed = await forget_projects(client, bench_projects)

        assert removed == 3_002  # 1,500 keys and the config version of each bench project
        for project_id in bench_projects:
            assert [k async for k in client.scan_iter(match=f"{project_tag(project_id)}:*")] == []
        left = [k async for k in client.scan_iter(match=f"{project_tag(other)}:*", count=10_000)]
        assert len(left) == 1_501
        assert await client.get(config_version_key(other)) == b"1"
    finally:
        await forget_projects(client, [other])
        await client.aclose()
