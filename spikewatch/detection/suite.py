"""The labelled trace suite: one issue's bucket counts in families of traffic users meet, each trace
with its true spikes, generated from a fixed seed so every run scores the same traces.

A true spike is an episode of 1 to 3 buckets whose first bucket carries at least 20 times the
issue's usual count (and at least ``SPIKE_MIN_EVENTS``); everything else a family does (noise,
daily and weekly cycles, slow ramps, lasting level shifts) is normal traffic that should not page.
The first day of every trace is history only: nothing in it is scored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from spikewatch.detection.traces import Trace
from worker.spike_rule import SpikeConfig

SUITE_SEED = 14
TRACES_PER_FAMILY = 20
# A level-shift trace holds two true spikes where the others hold eight or more.
TRACES_PER_FAMILY_OVERRIDES = {"level_shift": 60}
BUCKET_SECONDS = 300
BUCKETS_PER_HOUR = 3600 // BUCKET_SECONDS
BUCKETS_PER_DAY = 24 * BUCKETS_PER_HOUR
DAYS = 3
WARM_UP_BUCKETS = BUCKETS_PER_DAY
# Monday 2026-01-05 00:00 UTC: traces start at midnight, so cycles line up with the clock.
START_EPOCH_SECONDS = 1_767_571_200
# The spike settings the suite is scored with: the default multiplier and snooze, and the lowest
# threshold, so that the rule itself, not the floor, decides for quiet issues too.
SUITE_CONFIG = SpikeConfig(multiplier=10, threshold=1, snooze_duration_minutes=10)
SPIKE_MIN_EVENTS = 40
SPIKE_MIN_RATIO = 20.0
SPIKE_MAX_RATIO = 60.0
# Random spikes are at least this far apart, outside the ratcheting family.
SPIKE_SPACING_BUCKETS = 3 * BUCKETS_PER_HOUR


@dataclass(frozen=True, slots=True)
class Episode:
    onset: int  # index of the first spiking bucket in the trace
    length: int  # buckets during which a detection counts for this spike


@dataclass(frozen=True, slots=True)
class LabelledTrace:
    family: str
    trace: Trace
    spikes: list[Episode]
    scored_from: int  # detections and spikes before this bucket are not scored


Rng = np.random.Generator


def _poisson(rng: Rng, rates: np.ndarray) -> np.ndarray:
    return rng.poisson(rates).astype(np.int64)


def _hours(buckets: int) -> np.ndarray:
    """Hour of the day (fractional) of every bucket of a trace starting at midnight."""
    return (np.arange(buckets) % BUCKETS_PER_DAY) / BUCKETS_PER_HOUR


def _business_hours(buckets: int, night: float, day: float) -> np.ndarray:
    """``night`` outside 09:00-18:00 and ``day`` within, switching over about 15 minutes."""
    hours = _hours(buckets)
    rising = np.clip((hours - 9.0) * 4.0, 0.0, 1.0)
    falling = np.clip((18.0 - hours) * 4.0, 0.0, 1.0)
    return night + (day - night) * np.minimum(rising, falling)


def _onsets(rng: Rng, start: int, end: int, count: int) -> list[int]:
    """Up to ``count`` onsets in [start, end), at least SPIKE_SPACING_BUCKETS apart."""
    onsets: list[int] = []
    for candidate in rng.permutation(np.arange(start, end)):
        if all(abs(int(candidate) - o) >= SPIKE_SPACING_BUCKETS for o in onsets):
            onsets.append(int(candidate))
        if len(onsets) == count:
            break
    return sorted(onsets)


def _add_spikes(
    rng: Rng, counts: np.ndarray, rates: np.ndarray, onsets: list[int]
) -> list[Episode]:
    """A burst at each onset over the usual rate there, lasting 1 to 3 buckets, fading."""
    episodes = []
    for onset in onsets:
        length = int(rng.integers(1, 4))
        size = max(SPIKE_MIN_EVENTS, rng.uniform(SPIKE_MIN_RATIO, SPIKE_MAX_RATIO) * rates[onset])
        for step in range(min(length, len(counts) - onset)):
            counts[onset + step] += rng.poisson(size * 0.5**step)
        # A detection on the bucket after a one-bucket burst is still about that burst.
        episodes.append(Episode(onset, max(length, 2)))
    return episodes


def _random_spikes(rng: Rng, rates: np.ndarray, counts: np.ndarray) -> list[Episode]:
    per_day = int(rng.integers(3, 6))
    days = (len(counts) - WARM_UP_BUCKETS) / BUCKETS_PER_DAY
    onsets = _onsets(rng, WARM_UP_BUCKETS, len(counts) - 3, round(per_day * days))
    return _add_spikes(rng, counts, rates, onsets)


def steady(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """Poisson at one rate per trace, from a few events an hour to thousands per bucket."""
    buckets = DAYS * BUCKETS_PER_DAY
    rates = np.full(buckets, float(rng.choice([2.0, 8.0, 30.0, 150.0, 1500.0])))
    counts = _poisson(rng, rates)
    return counts, _random_spikes(rng, rates, counts)


def sparse(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """Below one event per bucket: most buckets are empty, a few hold one or two events."""
    buckets = DAYS * BUCKETS_PER_DAY
    rates = np.full(buckets, float(rng.choice([0.03, 0.1, 0.3, 0.8])))
    counts = _poisson(rng, rates)
    return counts, _random_spikes(rng, rates, counts)


def diurnal(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """A daily cycle: half the traces a smooth wave peaking at 8x its trough, half office hours
    where the day runs at 12 to 25 times the night, switching within a quarter of an hour."""
    buckets = DAYS * BUCKETS_PER_DAY
    base = float(rng.choice([1.0, 3.0, 20.0]))
    if rng.random() < 0.5:
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * _hours(buckets) / 24 + phase)
        rates = base * (1 + 3.5 * (1 + wave))
    else:
        rates = _business_hours(buckets, base, base * rng.uniform(12, 25))
    counts = _poisson(rng, rates)
    return counts, _random_spikes(rng, rates, counts)


def weekly(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """Office hours on weekdays, a weekend at a quarter of that: eight days from a Monday."""
    days = 8
    buckets = days * BUCKETS_PER_DAY
    base = float(rng.choice([1.0, 3.0, 20.0]))
    rates = _business_hours(buckets, base, base * rng.uniform(12, 25))
    weekday = (np.arange(buckets) // BUCKETS_PER_DAY) % 7
    rates = rates * np.where(weekday >= 5, 0.25, 1.0)
    counts = _poisson(rng, rates)
    return counts, _random_spikes(rng, rates, counts)


def bursty(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """Heavy-tailed noise: negative binomial with shape 1 to 4 (variance up to mean + mean^2)."""
    buckets = DAYS * BUCKETS_PER_DAY
    mean = float(rng.choice([10.0, 40.0, 150.0]))
    shape = float(rng.choice([1.0, 2.0, 4.0]))
    rates = np.full(buckets, mean)
    counts = rng.negative_binomial(shape, shape / (shape + mean), buckets).astype(np.int64)
    return counts, _random_spikes(rng, rates, counts)


def ramp(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """A release rolling out: the rate grows 20 to 50 fold over 3 to 8 hours, then stays."""
    buckets = DAYS * BUCKETS_PER_DAY
    base = float(rng.choice([0.5, 2.0, 10.0]))
    start = int(rng.integers(WARM_UP_BUCKETS, buckets - BUCKETS_PER_DAY))
    length = int(rng.integers(3, 9)) * BUCKETS_PER_HOUR
    progress = np.clip((np.arange(buckets) - start) / length, 0.0, 1.0)
    rates = base * rng.uniform(20, 50) ** progress
    counts = _poisson(rng, rates)
    return counts, _random_spikes(rng, rates, counts)


def ratcheting(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """The same kind of spike again and again, about an hour apart: a job that fails hourly."""
    buckets = DAYS * BUCKETS_PER_DAY
    rates = np.full(buckets, float(rng.choice([3.0, 10.0, 50.0])))
    counts = _poisson(rng, rates)
    onsets: list[int] = []
    for day in range(1, DAYS):
        first = day * BUCKETS_PER_DAY + int(rng.integers(0, 12 * BUCKETS_PER_HOUR))
        for repeat in range(int(rng.integers(4, 8))):
            onsets.append(first + repeat * BUCKETS_PER_HOUR + int(rng.integers(-1, 2)))
    episodes = []
    for onset in onsets:
        size = max(SPIKE_MIN_EVENTS, rng.uniform(SPIKE_MIN_RATIO, SPIKE_MAX_RATIO) * rates[onset])
        # A quarter of an hour of failures each time: the window of the next hour still holds two.
        for step in range(3):
            counts[onset + step] += rng.poisson(size * (0.5 if step == 2 else 1.0))
        episodes.append(Episode(onset, 3))
    return counts, episodes


def level_shift(rng: Rng) -> tuple[np.ndarray, list[Episode]]:
    """Lasting changes of level, one on each scored day: up 20 to 60 fold (a true spike, which
    then becomes the new normal for 2 to 12 hours) then back down (not a spike)."""
    buckets = DAYS * BUCKETS_PER_DAY
    base = float(rng.choice([1.0, 5.0, 30.0]))
    rates = np.full(buckets, base)
    spikes = []
    for day in range(1, DAYS):
        shift = day * BUCKETS_PER_DAY + int(rng.integers(0, 10 * BUCKETS_PER_HOUR))
        lasting = int(rng.integers(2, 13)) * BUCKETS_PER_HOUR
        rates[shift : shift + lasting] = base * rng.uniform(SPIKE_MIN_RATIO, SPIKE_MAX_RATIO)
        spikes.append(Episode(shift, 6))
    return _poisson(rng, rates), spikes


FAMILIES: dict[str, Callable[[Rng], tuple[np.ndarray, list[Episode]]]] = {
    "steady": steady,
    "sparse": sparse,
    "diurnal": diurnal,
    "weekly": weekly,
    "bursty": bursty,
    "ramp": ramp,
    "ratcheting": ratcheting,
    "level_shift": level_shift,
}


def generate_suite(seed: int = SUITE_SEED) -> Iterator[LabelledTrace]:
    for family_index, (family, make) in enumerate(FAMILIES.items()):
        for trace_index in range(TRACES_PER_FAMILY_OVERRIDES.get(family, TRACES_PER_FAMILY)):
            rng = np.random.default_rng([seed, family_index, trace_index])
            counts, spikes = make(rng)
            trace = Trace(
                BUCKET_SECONDS, START_EPOCH_SECONDS // BUCKET_SECONDS, [int(n) for n in counts]
            )
            yield LabelledTrace(family, trace, spikes, WARM_UP_BUCKETS)
