"""The adaptive detector on exact numbers and on hand-made traces, beside the mean rule: robust to
past spikes, aware of a daily rise, count-aware, with threshold and multiplier still binding."""

from __future__ import annotations

import pytest

from spikewatch.detection.replay import replay
from spikewatch.detection.traces import Trace
from worker.spike_rule import (
    SpikeConfig,
    adaptive_baseline,
    adaptive_history_buckets,
    is_spike,
    robust_level,
)

BUCKET_SECONDS = 300
DAY = 288
ADAPTIVE = SpikeConfig(multiplier=10, threshold=10, snooze_duration_minutes=10, detector="adaptive")
MEAN = SpikeConfig(multiplier=10, threshold=10, snooze_duration_minutes=10)


def spike_buckets(values: list[int], config: SpikeConfig) -> list[tuple[int, int, float]]:
    """(bucket index, current, baseline) of every spike of a trace starting at epoch 0."""
    return [
        (s.bucket_start // BUCKET_SECONDS, s.current, round(s.baseline, 4))
        for s in replay(Trace(BUCKET_SECONDS, 0, values), config)
    ]


def test_history_is_a_day_and_an_hour() -> None:
    assert adaptive_history_buckets(300) == DAY + 11
    assert adaptive_history_buckets(60) == 1440 + 11


def test_robust_level_caps_the_largest_third_at_the_largest_of_the_rest() -> None:
    assert robust_level([10, 10, 10, 10, 10, 10, 10, 12, 500, 900, 700]) == pytest.approx(
        (7 * 10 + 4 * 12) / 11
    )
    assert robust_level([4]) == 4.0
    assert robust_level([]) == 0.0


def test_a_jump_from_nothing_to_five_is_not_a_spike_but_to_six_is() -> None:
    config = SpikeConfig(multiplier=10, threshold=1, detector="adaptive")

    # 5 sigmas of sqrt(0 + 1) over an expected 0: more than 5 events are needed.
    assert is_spike(5, 0.0, config) is False
    assert is_spike(6, 0.0, config) is True
    # 300 over an expected 3: far past 10 x 3 and 3 + 5 x sqrt(4).
    assert is_spike(300, 3.0, config) is True
    # The mean rule has no such floor: any count over the threshold and baseline x multiplier.
    assert is_spike(3, 0.0, SpikeConfig(multiplier=10, threshold=1)) is True


def test_threshold_and_multiplier_still_bind_the_adaptive_detector() -> None:
    assert is_spike(9, 0.1, ADAPTIVE) is False  # under the threshold
    assert is_spike(300, 30.0, ADAPTIVE) is False  # exactly 10 x expected
    assert is_spike(301, 30.0, ADAPTIVE) is True


def test_sparse_issue_spikes_at_three_hundred_not_at_three() -> None:
    quiet = [0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0] * 3
    config = SpikeConfig(multiplier=2, threshold=1, detector="adaptive")

    assert spike_buckets([*quiet, 3], config) == []
    assert spike_buckets([*quiet, 300], config) == [(33, 300, 0.0)]


def test_repeated_spikes_do_not_ratchet_up_the_adaptive_baseline() -> None:
    # Every hour a quarter of an hour of failures (500, 500, 250) over 5 events a bucket: the
    # mean of the next hour holds 500 and 250, so 500 is no longer 10 times it.
    hour = [500, 500, 250] + [5] * 9
    values = [5] * 12 + hour * 3

    assert spike_buckets(values, MEAN) == [(12, 500, 5.0)]
    # The snooze lets the burst's third bucket page again: still the same burst.
    assert spike_buckets(values, ADAPTIVE) == [
        (12, 500, 5.0),
        (14, 250, 5.0),
        (24, 500, 5.0),
        (26, 250, 5.0),
        (36, 500, 5.0),
        (38, 250, 5.0),
    ]


def test_a_rise_seen_at_the_same_time_yesterday_is_not_a_spike() -> None:
    # Office hours: 1 event a bucket at night, 30 from 09:00 on (bucket 108 of the day).
    day = [1] * 108 + [30] * 180
    second_day = list(day)
    second_day[144] = 900  # a true spike at noon

    spikes_mean = spike_buckets(day + second_day, MEAN)
    spikes_adaptive = spike_buckets(day + second_day, ADAPTIVE)

    assert spikes_mean == [(108, 30, 1.0), (DAY + 108, 30, 1.0), (DAY + 144, 900, 30.0)]
    # The first morning is news to both (the adaptive detector takes four buckets of the new
    # level as normal, so it pages again once the snooze is over); on the second it expects it.
    assert spikes_adaptive == [(108, 30, 1.0), (110, 30, 1.0), (DAY + 144, 900, 30.0)]


def test_expected_count_is_raised_by_yesterdays_rise_never_lowered_by_its_fall() -> None:
    history_length = adaptive_history_buckets(BUCKET_SECONDS)
    # The oldest 11 buckets are the hour before this time yesterday, the 12th this time.
    rising = [2] * 11 + [20] * (history_length - 22) + [2] * 11
    falling = [20] * 11 + [2] * (history_length - 22) + [20] * 11

    # Yesterday went from 2 to 20 at this time: 2 x (20 + 1) / (2 + 1).
    assert adaptive_baseline(rising, history_length, fallback=0.0) == pytest.approx(14.0)
    assert adaptive_baseline(falling, history_length, fallback=0.0) == pytest.approx(20.0)
    # Less than a day observed: the last hour alone.
    assert adaptive_baseline(rising, 30, fallback=0.0) == pytest.approx(2.0)


def test_an_issue_without_history_is_judged_against_the_project_baseline() -> None:
    assert adaptive_baseline([0] * 299, 0, fallback=7.5) == 7.5
    assert adaptive_baseline([0] * 297 + [4, 2], 2, fallback=7.5) == 3.0
