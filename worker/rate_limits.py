"""Rate limits: a token bucket per issue, then one per project, charged by ``rate_limits.lua``.

Owns the translation of a project's settings into the script's arguments and of its reply into
one outcome per event. It never forwards or drops events itself (the pipeline acts on the
outcomes) and never talks to Redis on its own: ``redis_stage`` makes its call with counting's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files

from schemas.redis_keys import project_tag
from worker.counting import WATERMARK_TTL_SECONDS

RATE_LIMITS_LUA = files("worker").joinpath("rate_limits.lua").read_text(encoding="utf-8")

DEFAULT_BUCKET_MINUTES = 60
# A bucket key that expires is read back as full, which is only right once it has had time to
# refill completely; the slack keeps it a little longer than that.
BUCKET_TTL_SLACK_SECONDS = 60
# A redelivery replays at most the offsets not yet committed, a few batches; remembering the
# outcomes of the last 10,000 offsets per partition covers that with room to spare.
REPLAY_WINDOW_OFFSETS = 10_000


class RateLimitOutcome(StrEnum):
    ADMITTED = "admitted"
    RATE_LIMITED_ISSUE = "rate_limited_issue"
    RATE_LIMITED_PROJECT = "rate_limited_project"


_OUTCOME_BY_CODE = {
    "a": RateLimitOutcome.ADMITTED,
    "i": RateLimitOutcome.RATE_LIMITED_ISSUE,
    "p": RateLimitOutcome.RATE_LIMITED_PROJECT,
}


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A project's limits: ``value`` events per ``bucket_minutes``; a null value means no limit."""

    issue_value: int | None = None
    issue_bucket_minutes: int | None = None
    project_value: int | None = None
    project_bucket_minutes: int | None = None

    def __post_init__(self) -> None:
        for value in (self.issue_value, self.project_value):
            if value is not None and value < 0:
                raise ValueError(f"a rate limit value must be >= 0, got {value}")
        for minutes in (self.issue_bucket_minutes, self.project_bucket_minutes):
            if minutes is not None and minutes < 1:
                raise ValueError(f"a rate limit bucket must be >= 1 minute, got {minutes}")


def _bucket_args(value: int | None, minutes: int | None) -> list[str | int]:
    """Capacity, refill tokens per second and key TTL of one bucket, as the script reads them."""
    if value is None:
        return ["", 0, 0]
    seconds = (DEFAULT_BUCKET_MINUTES if minutes is None else minutes) * 60
    return [value, repr(value / seconds), seconds + BUCKET_TTL_SLACK_SECONDS]


def rate_limit_watermark_key(project_id: int, topic: str, partition: int) -> str:
    return f"{project_tag(project_id)}:wm:tb:{topic}:{partition}"


def replay_log_key(project_id: int, topic: str, partition: int) -> str:
    return f"{project_tag(project_id)}:tb:limited:{topic}:{partition}"


def project_bucket_key(project_id: int) -> str:
    return f"{project_tag(project_id)}:tb:p"


def issue_bucket_key(project_id: int, issue_id: str) -> str:
    return f"{project_tag(project_id)}:tb:i:{issue_id}"


class RateLimitCall:
    """Builds the ``rate_limits.lua`` call of one project and reads its reply."""

    def __init__(self, *, topic: str) -> None:
        self._topic = topic

    def keys(self, project_id: int, slots: Mapping[int, int]) -> list[str]:
        """KEYS of the call for the partitions of ``slots`` (``counting.partition_slots``)."""
        keys = [project_bucket_key(project_id)]
        for partition in slots:
            keys.append(rate_limit_watermark_key(project_id, self._topic, partition))
            keys.append(replay_log_key(project_id, self._topic, partition))
        return keys

    def fixed_args(self, project_id: int, limits: RateLimits, now: float) -> list[str | int]:
        """ARGV before the events; each event then takes 3 slots (see rate_limits.lua)."""
        return [
            project_tag(project_id),
            repr(now),
            *_bucket_args(limits.issue_value, limits.issue_bucket_minutes),
            *_bucket_args(limits.project_value, limits.project_bucket_minutes),
            REPLAY_WINDOW_OFFSETS,
            WATERMARK_TTL_SECONDS,
        ]

    @staticmethod
    def parse(reply: bytes | str) -> list[RateLimitOutcome]:
        codes = reply.decode() if isinstance(reply, bytes) else reply
        return [_OUTCOME_BY_CODE[code] for code in codes]
