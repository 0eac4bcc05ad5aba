"""Spike events under the snooze lock, on the real Redis: ids, message fields, snooze, release."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from schemas.events import SpikeEventMessage, SpikeIssue
from worker.snooze import SnoozeLock, acquire_snoozes, confirm_snoozes, release_snooze
from worker.spike_events import (
    BatchPositions,
    SpikeEmissions,
    build_spike_event,
    emit_spikes,
    spike_event_id,
)
from worker.spike_rule import SpikeCandidate, SpikeConfig

pytestmark = pytest.mark.redis

BUCKET_START = 1_800_000_000
NOW = BUCKET_START + 10.0
ISSUE_ID = "0f7c61d4-1e2b-4c0a-9d8e-2f3a4b5c6d7e"
ISSUE = SpikeIssue(ISSUE_ID, "TypeError", "x is undefined")
CONFIG = SpikeConfig(multiplier=2, threshold=10, snooze_duration_minutes=10)
CANDIDATE = SpikeCandidate(ISSUE_ID, 21, 10.0, BUCKET_START)
# The batch most tests decide in: one event, at offset 1 of partition 0.
POSITION = "0:1"


def _locks(
    project_id: int, spikes: dict[str, str], seconds: int, claim: str = POSITION
) -> list[SnoozeLock]:
    return [SnoozeLock(project_id, issue, spike, seconds, claim) for issue, spike in spikes.items()]


async def acquire(
    redis: Redis,
    project_id: int,
    spikes: dict[str, str],
    seconds: int,
    *,
    claim: str = POSITION,
    batch: frozenset[str] = frozenset({POSITION}),
) -> set[str]:
    """The issues of ``spikes`` (issue -> spike id) whose spike may go out now, for a batch of
    the events at ``batch`` that claims them at ``claim``."""
    locks = _locks(project_id, spikes, seconds, claim)
    granted = await acquire_snoozes(redis, locks, batch)
    return {lock.issue_id for lock, go in zip(locks, granted, strict=True) if go}


def one_event_batch(candidates: list[SpikeCandidate], position: str = POSITION) -> BatchPositions:
    """A batch whose one event, at ``position``, stands for every candidate's issue."""
    return BatchPositions(frozenset({position}), {c.issue_id: position for c in candidates})


async def confirm(redis: Redis, project_id: int, spikes: dict[str, str]) -> None:
    await confirm_snoozes(redis, _locks(project_id, spikes, 600))


async def emit(
    redis: Redis,
    project_id: int,
    candidates: list[SpikeCandidate],
    issues: dict[str, SpikeIssue],
    now: float,
    publish: Recorder,
    positions: BatchPositions | None = None,
) -> SpikeEmissions:
    """One project's candidates through ``emit_spikes`` on the test's config, decided in
    ``positions`` (by default the one-event batch at ``POSITION``)."""
    return await emit_spikes(
        redis,
        {project_id: candidates},
        issues,
        {project_id: CONFIG},
        now,
        publish,
        positions or one_event_batch(candidates),
    )


class Recorder:
    """A publish callable that records what it was given, failing the first ``failures`` calls;
    with a ``gate``, each call first waits for it to open (a broker slow to acknowledge)."""

    def __init__(self, failures: int = 0, gate: asyncio.Event | None = None) -> None:
        self.published: list[SpikeEventMessage] = []
        self._failures = failures
        self._gate = gate
        # Set once a call has started: its lock is taken by then.
        self.called = asyncio.Event()

    async def __call__(self, event: SpikeEventMessage) -> None:
        self.called.set()
        if self._gate is not None:
            await self._gate.wait()
        if self._failures:
            self._failures -= 1
            raise ConnectionError("spike topic unavailable")
        self.published.append(event)


def test_spike_event_id_is_the_same_for_an_issue_and_bucket_and_differs_otherwise() -> None:
    first = spike_event_id(ISSUE_ID, BUCKET_START)

    assert spike_event_id(ISSUE_ID, BUCKET_START) == first
    assert first.version == 5
    assert spike_event_id(ISSUE_ID, BUCKET_START + 300) != first
    assert spike_event_id(str(uuid.uuid4()), BUCKET_START) != first


def test_spike_event_carries_issue_counts_and_config() -> None:
    event = build_spike_event(7, ISSUE, CANDIDATE, CONFIG, detected_at=NOW)

    assert event == SpikeEventMessage(
        id=str(spike_event_id(ISSUE_ID, BUCKET_START)),
        project_id=7,
        issue=ISSUE,
        detected_at="2027-01-15T08:00:10+00:00",
        computed_baseline=10.0,
        current_bucket_value=21,
        bucket_start="2027-01-15T08:00:00+00:00",
        threshold=10,
        multiplier=2,
    )


async def test_acquire_snoozes_gives_each_lock_once_for_its_duration(
    redis: Redis, project_id: int
) -> None:
    first = await acquire(redis, project_id, {"a": "spike-a", "b": "spike-b"}, 600)
    await confirm(redis, project_id, {"a": "spike-a", "b": "spike-b"})
    second = await acquire(redis, project_id, {"b": "spike-b", "c": "spike-c"}, 600)

    assert (first, second) == ({"a", "b"}, {"c"})
    assert 599 <= await redis.ttl(f"{{p:{project_id}}}:snooze:a") <= 600


async def test_confirming_a_lock_keeps_its_expiry_and_confirms_only_held_locks(
    redis: Redis, project_id: int
) -> None:
    await acquire(redis, project_id, {"a": "spike-a"}, 600)
    await redis.expire(f"{{p:{project_id}}}:snooze:a", 100)

    await confirm(redis, project_id, {"a": "spike-a", "gone": "spike-gone"})

    assert await redis.get(f"{{p:{project_id}}}:snooze:a") == b"published:spike-a"
    assert 99 <= await redis.ttl(f"{{p:{project_id}}}:snooze:a") <= 100
    # A lock that expired meanwhile is not brought back without an expiry.
    assert await redis.exists(f"{{p:{project_id}}}:snooze:gone") == 0


async def test_an_unconfirmed_lock_lets_its_spike_through_again_only_to_a_redelivery(
    redis: Redis, project_id: int
) -> None:
    taken = await acquire(
        redis, project_id, {"a": "spike-a"}, 600, claim="0:41", batch=frozenset({"0:41"})
    )
    lock = await redis.get(f"{{p:{project_id}}}:snooze:a")

    # The batch redelivered after a crash before the confirmation, gathered differently (it
    # starts earlier and would claim another event) but holding the claimed one: granted.
    redelivered = frozenset({"0:40", "0:41", "1:9"})
    assert await acquire(
        redis, project_id, {"a": "spike-a"}, 600, claim="0:40", batch=redelivered
    ) == {"a"}
    # The same spike from a batch without the claimed event, such as another worker's on other
    # partitions or a later batch after a failed confirmation: snoozed.
    for elsewhere in (frozenset({"2:7"}), frozenset({"0:42", "0:43"})):
        assert (
            await acquire(
                redis, project_id, {"a": "spike-a"}, 600, claim=min(elsewhere), batch=elsewhere
            )
            == set()
        )
    # Another spike of the issue (a later bucket): snoozed, whatever became of the first.
    assert (
        await acquire(
            redis, project_id, {"a": "spike-a-later"}, 600, claim="0:41", batch=redelivered
        )
        == set()
    )
    assert (taken, lock) == ({"a"}, b"pending:spike-a@0:41")


async def test_released_snooze_can_be_taken_again(redis: Redis, project_id: int) -> None:
    await acquire(redis, project_id, {"a": "spike-a"}, 600)
    await confirm(redis, project_id, {"a": "spike-a"})

    await release_snooze(redis, SnoozeLock(project_id, "a", "spike-a", 600, POSITION))

    assert await acquire(redis, project_id, {"a": "spike-a-later"}, 600) == {"a"}


async def test_second_crossing_inside_the_snooze_emits_nothing_and_after_it_emits_again(
    redis: Redis, project_id: int
) -> None:
    publish = Recorder()
    lock = f"{{p:{project_id}}}:snooze:{ISSUE_ID}"
    issues = {ISSUE_ID: ISSUE}

    first = await emit(redis, project_id, [CANDIDATE], issues, NOW, publish)
    lock_ttl = await redis.ttl(lock)
    inside = await emit(redis, project_id, [CANDIDATE], issues, NOW + 60, publish)
    # Let the snooze run out now instead of waiting ten minutes.
    await redis.pexpire(lock, 20)
    await asyncio.sleep(0.1)
    later = SpikeCandidate(ISSUE_ID, 40, 10.0, BUCKET_START + 900)
    after = await emit(redis, project_id, [later], issues, NOW + 900, publish)

    assert 599 <= lock_ttl <= 600
    assert [e.id for e in first.published] == [str(spike_event_id(ISSUE_ID, BUCKET_START))]
    assert (inside.published, inside.failed, inside.snoozed) == ([], [], [ISSUE_ID])
    assert [e.id for e in after.published] == [str(spike_event_id(ISSUE_ID, BUCKET_START + 900))]
    assert [e.current_bucket_value for e in publish.published] == [21, 40]


async def test_failed_publish_releases_the_lock_so_a_later_batch_retries(
    redis: Redis, project_id: int
) -> None:
    publish = Recorder(failures=1)
    issues = {ISSUE_ID: ISSUE}

    failed = await emit(redis, project_id, [CANDIDATE], issues, NOW, publish)
    lock_after_failure = await redis.exists(f"{{p:{project_id}}}:snooze:{ISSUE_ID}")
    retried = await emit(redis, project_id, [CANDIDATE], issues, NOW + 5, publish)

    assert [e.id for e in failed.failed] == [str(spike_event_id(ISSUE_ID, BUCKET_START))]
    assert failed.published == []
    assert lock_after_failure == 0
    # Same issue and bucket: the retry carries the same id, so downstream deduplicates.
    assert [e.id for e in retried.published] == [e.id for e in failed.failed]
    assert await redis.exists(f"{{p:{project_id}}}:snooze:{ISSUE_ID}") == 1


async def test_a_spike_whose_worker_died_before_the_broker_acknowledged_it_goes_out_again(
    redis: Redis, project_id: int
) -> None:
    issues = {ISSUE_ID: ISSUE}
    spike_id = str(spike_event_id(ISSUE_ID, BUCKET_START))
    # What a worker killed between taking the lock and the broker's acknowledgement leaves.
    await acquire(redis, project_id, {ISSUE_ID: spike_id}, 600)
    assert await redis.get(f"{{p:{project_id}}}:snooze:{ISSUE_ID}") == (
        f"pending:{spike_id}@{POSITION}".encode()
    )
    publish = Recorder()

    redelivered = await emit(redis, project_id, [CANDIDATE], issues, NOW, publish)
    replayed_again = await emit(redis, project_id, [CANDIDATE], issues, NOW + 1, publish)

    assert [e.id for e in redelivered.published] == [spike_id]
    # Once acknowledged and confirmed, a further replay of the batch publishes nothing more.
    assert (replayed_again.published, replayed_again.snoozed) == ([], [ISSUE_ID])
    assert [e.id for e in publish.published] == [spike_id]
    lock = await redis.get(f"{{p:{project_id}}}:snooze:{ISSUE_ID}")
    assert lock == f"published:{spike_id}".encode()


async def test_two_workers_crossing_at_once_publish_the_spike_once(
    redis: Redis, project_id: int
) -> None:
    """Two workers count the same issue over its threshold from different partitions; the first
    holds its lock pending while the broker is slow to acknowledge."""
    issues = {ISSUE_ID: ISSUE}
    gate = asyncio.Event()
    slow, fast = Recorder(gate=gate), Recorder()

    first = asyncio.create_task(
        emit(redis, project_id, [CANDIDATE], issues, NOW, slow, one_event_batch([CANDIDATE], "0:5"))
    )
    await slow.called.wait()
    second = await emit(
        redis, project_id, [CANDIDATE], issues, NOW, fast, one_event_batch([CANDIDATE], "2:3")
    )
    gate.set()
    first_result = await first

    assert (second.published, second.snoozed) == ([], [ISSUE_ID])
    assert [e.id for e in first_result.published] == [str(spike_event_id(ISSUE_ID, BUCKET_START))]
    assert (len(slow.published), fast.published) == (1, [])


async def test_a_later_batch_after_a_lost_confirmation_stays_snoozed(
    redis: Redis, project_id: int
) -> None:
    """The spike went out but Redis missed its confirmation: the lock stays pending; the worker's
    next batch that sees the issue over its threshold must not publish it again."""
    issues = {ISSUE_ID: ISSUE}
    await acquire(redis, project_id, {ISSUE_ID: str(spike_event_id(ISSUE_ID, BUCKET_START))}, 600)
    publish = Recorder()

    later = await emit(
        redis,
        project_id,
        [CANDIDATE],
        issues,
        NOW + 30,
        publish,
        one_event_batch([CANDIDATE], "0:2"),
    )

    assert (later.published, later.snoozed, publish.published) == ([], [ISSUE_ID], [])


async def test_one_failed_publish_does_not_stop_the_other_spikes(
    redis: Redis, project_id: int
) -> None:
    publish = Recorder(failures=1)
    other = SpikeCandidate("other-issue", 30, 1.0, BUCKET_START)

    result = await emit(redis, project_id, [CANDIDATE, other], {}, NOW, publish)

    assert [e.issue.id for e in result.failed] == [ISSUE_ID]
    assert [(e.issue.id, e.issue.name) for e in result.published] == [("other-issue", None)]


async def test_spikes_of_several_projects_each_get_their_own_lock_and_snooze(
    redis: Redis, project_id: int
) -> None:
    other_project = project_id + 1
    await redis.delete(f"{{p:{other_project}}}:snooze:{ISSUE_ID}")
    short = SpikeConfig(multiplier=2, threshold=10, snooze_duration_minutes=1)
    publish = Recorder()

    result = await emit_spikes(
        redis,
        {project_id: [CANDIDATE], other_project: [CANDIDATE]},
        {ISSUE_ID: ISSUE},
        {project_id: CONFIG, other_project: short},
        NOW,
        publish,
        one_event_batch([CANDIDATE]),
    )

    assert sorted(e.project_id for e in result.published) == [project_id, other_project]
    assert 599 <= await redis.ttl(f"{{p:{project_id}}}:snooze:{ISSUE_ID}") <= 600
    assert 59 <= await redis.ttl(f"{{p:{other_project}}}:snooze:{ISSUE_ID}") <= 60
    await redis.delete(f"{{p:{other_project}}}:snooze:{ISSUE_ID}")
