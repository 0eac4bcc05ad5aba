"""Input streams whose every message's fate is known before the worker sees it, and the project
configuration that makes it so.

Fates are decided by rules with exact answers: poison and unknown projects are dead-lettered,
sampling is a function of the uuid, and token buckets that never refill within a test let through
exactly their capacity per issue, in the order of the issue's partition. Pure: no I/O here.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.events import DeadLetterReason
from tests.worker.events import encode, exception_event, iso, poison_messages

ISSUE_LIMIT = 5
PROJECT_LIMIT = 30
# A year: the buckets refill one token per months, never within a test, so each lets through
# exactly its capacity.
LIMIT_BUCKET_MINUTES = 365 * 24 * 60
NOISE_TYPE = "NoiseError"
NOISE_SAMPLING_RATE = 0.5
SPIKE_THRESHOLD = 150
BURST_EVENTS = 200
# The spiking project's background issues, each kept below the threshold.
BACKGROUND_ISSUES = 40


@dataclass(frozen=True, slots=True)
class StreamProjects:
    limited: int  # a suppression rule on NOISE_TYPE and both rate limits
    spiking: int  # a low spike threshold, no limits
    unknown: int  # never created: its events are dead-lettered

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """The configuration rows, by table name, exactly as the API would store them."""
        return {
            "projects": [
                {"id": self.limited, "name": f"limited {self.limited}"},
                {"id": self.spiking, "name": f"spiking {self.spiking}"},
            ],
            "error_tracking_settings": [
                {
                    "project_id": self.limited,
                    "per_issue_rate_limit_value": ISSUE_LIMIT,
                    "per_issue_rate_limit_bucket_size_minutes": LIMIT_BUCKET_MINUTES,
                    "project_rate_limit_value": PROJECT_LIMIT,
                    "project_rate_limit_bucket_size_minutes": LIMIT_BUCKET_MINUTES,
                }
            ],
            "error_tracking_suppression_rules": [
                {
                    "id": uuid.uuid4(),
                    "project_id": self.limited,
                    "filters": {
                        "type": "AND",
                        "values": [{"key": "$exception_types", "value": [NOISE_TYPE]}],
                    },
                    "sampling_rate": NOISE_SAMPLING_RATE,
                }
            ],
            "error_tracking_spike_detection_config": [
                {"project_id": self.spiking, "threshold": SPIKE_THRESHOLD, "multiplier": 10}
            ],
        }


@dataclass(frozen=True, slots=True)
class Fate:
    """What must become of one input message (the ledger compares it with what did)."""

    # Set for a valid event of a known project; None for a message that is dead-lettered
    # (except one the sink refuses: it was counted before, under its issue).
    uuid: str | None = None
    project_id: int | None = None
    fingerprint: str | None = None
    dead_letter_reason: DeadLetterReason | None = None
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class Planned:
    """One input message to send, and its fate."""

    partition: int
    value: bytes | None  # None: a null message (a tombstone, which needs a key)
    fate: Fate = Fate()
    key: bytes | None = None


def is_sampled_out(event_uuid: str, sampling_rate: float) -> bool:
    """The spec's rule, written out again so that the worker's own code is not the oracle."""
    return uuid.UUID(event_uuid).int % 10_000 < sampling_rate * 10_000


def _event(project_id: int, fingerprint: str, error_type: str = "TypeError") -> dict[str, Any]:
    return exception_event(
        project_id,
        error_type=error_type,
        timestamp=iso(time.time()),
        **{"$exception_fingerprint": fingerprint},
    )


def _planned_event(
    projects: StreamProjects, project_id: int, fingerprint: str, partition: int, **kind: Any
) -> Planned:
    document = _event(project_id, fingerprint, **kind)
    if project_id == projects.unknown:
        return Planned(
            partition, encode(document), Fate(dead_letter_reason=DeadLetterReason.UNKNOWN_PROJECT)
        )
    suppressed = kind.get("error_type") == NOISE_TYPE and is_sampled_out(
        document["uuid"], NOISE_SAMPLING_RATE
    )
    fate = Fate(document["uuid"], project_id, fingerprint, suppressed=suppressed)
    return Planned(partition, encode(document), fate)


def core_stream(projects: StreamProjects, partitions: int, seed: int) -> list[Planned]:
    """Every kind of fate, shuffled together: issues over and under their limit (each pinned to
    one partition, so its order is known), sampled noise, a burst that spikes once, poison of
    every decode reason and events of an unknown project."""
    limited = projects.limited
    planned: list[Planned] = []
    for n in range(10):
        planned += [
            _planned_event(projects, limited, f"over-{n}", n % partitions) for _ in range(8)
        ]
    for n in range(4):
        planned += [
            _planned_event(projects, limited, f"under-{n}", (n + 1) % partitions) for _ in range(3)
        ]
    planned += [
        _planned_event(projects, limited, "noise", 2 % partitions, error_type=NOISE_TYPE)
        for _ in range(120)
    ]
    planned += [
        _planned_event(projects, projects.spiking, "burst", n % partitions)
        for n in range(BURST_EVENTS)
    ]
    planned += [
        _planned_event(projects, projects.unknown, "unknown", n % partitions) for n in range(10)
    ]
    poison = [
        Planned(n % partitions, value, Fate(dead_letter_reason=reason))
        for n, (reason, value) in enumerate(poison_messages(limited))
    ]
    planned += poison
    random.Random(seed).shuffle(planned)
    return planned


def background(projects: StreamProjects, partitions: int, count: int) -> Iterator[Planned]:
    """``count`` events of the spiking project's background issues, round robin over issues and
    partitions; no issue reaches the spike threshold."""
    if count > BACKGROUND_ISSUES * (SPIKE_THRESHOLD - 1):
        raise ValueError(f"{count} background events would make an issue spike")
    for n in range(count):
        fingerprint = f"background-{n % BACKGROUND_ISSUES}"
        yield _planned_event(projects, projects.spiking, fingerprint, n % partitions)


def issue_events(
    project_id: int, count: int, issues: int, partitions: int
) -> tuple[list[dict[str, Any]], list[Planned]]:
    """``count`` events of one project taking turns among ``issues`` fingerprints (``issue-<n>``)
    and among ``partitions``: the documents, and the messages that send them."""
    events = [
        exception_event(project_id, **{"$exception_fingerprint": f"issue-{n % issues}"})
        for n in range(count)
    ]
    return events, [Planned(n % partitions, encode(event)) for n, event in enumerate(events)]


def chunks(planned: Sequence[Planned], size: int) -> Iterator[Sequence[Planned]]:
    for start in range(0, len(planned), size):
        yield planned[start : start + size]
