"""Where an input event ends: every consumed event ends in exactly one Outcome.

Metrics and sinks branch on these values only; they are metric label values, so renaming one
breaks dashboards. Why an event was dead-lettered is part of the DLQ contract (``schemas.events``).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    FORWARDED = "forwarded"
    SUPPRESSED = "suppressed"
    RATE_LIMITED_ISSUE = "rate_limited_issue"
    RATE_LIMITED_PROJECT = "rate_limited_project"
    DEAD_LETTERED = "dead_lettered"
