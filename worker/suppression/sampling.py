"""Which of the events a rule matches it suppresses: a pure function of the event's uuid.

It must never depend on time, worker or randomness, so every worker and every replay agree.
"""

from __future__ import annotations

import uuid

SAMPLING_BUCKETS = 10_000


def is_sampled_out(event_uuid: uuid.UUID, sampling_rate: float) -> bool:
    """True when a matching event falls in the ``sampling_rate`` fraction that is suppressed."""
    return event_uuid.int % SAMPLING_BUCKETS < sampling_rate * SAMPLING_BUCKETS
