"""The spike decision on counts read back from the real Redis: issue and project baselines."""

from __future__ import annotations

import itertools

import pytest
from redis.asyncio import Redis

from worker.counting import CountedEvent, ProjectCounts
from worker.rate_limits import RateLimits
from worker.redis_stage import RedisStage
from worker.spike_rule import SpikeCandidate, SpikeConfig, find_spike_candidates

pytestmark = pytest.mark.redis

BUCKET = 300
BUCKET_START = 1_800_000_000
NOW = BUCKET_START + 10.0
CONFIG = SpikeConfig(multiplier=2, threshold=10)


class Feed:
    """Applies events of given issues, `back` buckets before the current one, offsets in order."""

    def __init__(self, stage: RedisStage, project_id: int) -> None:
        self._stage = stage
        self._project_id = project_id
        self._offsets = itertools.count()

    async def send(self, back: int, **events_per_issue: int) -> ProjectCounts:
        now = NOW - back * BUCKET
        batch = [
            CountedEvent(issue_id, 0, next(self._offsets), now)
            for issue_id, n in events_per_issue.items()
            for _ in range(n)
        ]
        result = await self._stage.apply({self._project_id: (RateLimits(), batch)}, now)
        counts = result.projects[self._project_id].counts
        assert counts is not None
        return counts


@pytest.fixture
def feed(redis: Redis, project_id: int) -> Feed:
    return Feed(RedisStage(redis, topic="exception_events", bucket_size_seconds=BUCKET), project_id)


async def test_issue_more_than_doubling_its_baseline_past_the_threshold_spikes(feed: Feed) -> None:
    await feed.send(back=5, a=10)
    await feed.send(back=1, a=10)

    counts = await feed.send(back=0, a=21)

    assert find_spike_candidates(counts, CONFIG) == [SpikeCandidate("a", 21, 10.0, BUCKET_START)]


async def test_issue_exactly_doubling_its_baseline_does_not_spike(feed: Feed) -> None:
    await feed.send(back=5, a=10)
    await feed.send(back=1, a=10)

    counts = await feed.send(back=0, a=20)

    assert find_spike_candidates(counts, CONFIG) == []


async def test_new_issue_is_judged_against_the_project_mean_per_issue_count(feed: Feed) -> None:
    # One bucket back: 12 events over 2 issues; three back: 8 events over 1 issue.
    await feed.send(back=3, x=8)
    await feed.send(back=1, x=4, y=8)

    counts = await feed.send(back=0, new=15)

    # Project baseline = mean(8 / 1, 12 / 2) = 7.0, so 15 > 14 spikes.
    assert find_spike_candidates(counts, CONFIG) == [SpikeCandidate("new", 15, 7.0, BUCKET_START)]


async def test_new_issue_at_the_project_baseline_times_multiplier_does_not_spike(
    feed: Feed,
) -> None:
    await feed.send(back=3, x=8)
    await feed.send(back=1, x=4, y=8)

    counts = await feed.send(back=0, new=14)

    assert find_spike_candidates(counts, CONFIG) == []
