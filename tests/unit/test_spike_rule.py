"""The spike rule on exact numbers: threshold, strict multiplier, baselines, vectorisation."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from worker.counting import IssueCounts, ProjectCounts
from worker.spike_rule import (
    SpikeCandidate,
    SpikeConfig,
    find_spike_candidates,
    find_spikes,
    is_spike,
    issue_baselines,
    project_baseline,
)

STRICT = SpikeConfig(multiplier=2, threshold=10)


def test_current_above_baseline_times_multiplier_is_a_spike() -> None:
    assert is_spike(21, 10.0, STRICT) is True


def test_current_equal_to_baseline_times_multiplier_is_not_a_spike() -> None:
    assert is_spike(20, 10.0, STRICT) is False


def test_current_below_threshold_is_not_a_spike_however_high_over_baseline() -> None:
    assert is_spike(9, 1.0, STRICT) is False


def test_current_at_threshold_is_a_spike() -> None:
    assert is_spike(10, 1.0, STRICT) is True


def test_defaults_are_multiplier_10_threshold_500_snooze_10_minutes() -> None:
    config = SpikeConfig()

    assert (config.multiplier, config.threshold, config.snooze_seconds) == (10, 500, 600)
    assert is_spike(500, 49.9, config) is True
    assert is_spike(500, 50.0, config) is False


def test_issue_baseline_ignores_empty_buckets() -> None:
    history = np.array([[0, 0, 4, 0, 0, 0, 0, 0, 8, 0, 0]])

    assert issue_baselines(history, fallback=99.0).tolist() == [6.0]


def test_issue_without_history_falls_back_to_the_project_baseline() -> None:
    history = np.array([[0] * 11, [2] + [0] * 10])

    assert issue_baselines(history, fallback=7.5).tolist() == [7.5, 2.0]


def test_project_baseline_is_the_mean_per_issue_count_of_non_empty_buckets() -> None:
    totals = [0, 30, 0, 10, 0, 0, 0, 0, 0, 0, 0]
    issues = [0, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0]

    assert project_baseline(totals, issues) == 7.5


def test_project_without_history_has_a_zero_baseline() -> None:
    assert project_baseline([0] * 11, [0] * 11) == 0.0


def test_find_spikes_applies_the_rule_to_every_issue_at_once() -> None:
    current = np.array([21, 20, 9, 30])
    history = np.array(
        [
            [10] * 11,
            [0] * 10 + [10],
            [1] + [0] * 10,
            [0] * 11,
        ]
    )

    mask, baselines = find_spikes(current, history, project_baseline=15.0, config=STRICT)

    assert mask.tolist() == [True, False, False, False]
    assert baselines.tolist() == [10.0, 10.0, 1.0, 15.0]


@given(
    st.lists(
        st.tuples(st.integers(0, 5000), st.lists(st.integers(0, 500), min_size=11, max_size=11)),
        min_size=1,
        max_size=20,
    ),
    st.floats(0, 500, allow_nan=False),
    st.integers(1, 20),
    st.integers(0, 1000),
)
def test_find_spikes_agrees_with_is_spike_issue_by_issue(
    rows: list[tuple[int, list[int]]], fallback: float, multiplier: int, threshold: int
) -> None:
    config = SpikeConfig(multiplier=multiplier, threshold=threshold)
    current = np.array([row[0] for row in rows])
    history = np.array([row[1] for row in rows])

    mask, baselines = find_spikes(current, history, fallback, config)

    for i, (count, buckets) in enumerate(rows):
        non_empty = [n for n in buckets if n]
        expected_baseline = sum(non_empty) / len(non_empty) if non_empty else fallback
        assert baselines[i] == expected_baseline
        assert bool(mask[i]) == is_spike(count, expected_baseline, config)


def test_candidates_are_the_spiking_issues_with_their_baseline_and_bucket() -> None:
    counts = ProjectCounts(
        bucket_start=1_800_000_000,
        issues={
            "steady": IssueCounts("steady", 20, [10] * 11),
            "spiking": IssueCounts("spiking", 21, [0] * 9 + [10, 10]),
            "new": IssueCounts("new", 16, [0] * 11),
        },
        history_totals=[0] * 10 + [40],
        history_issue_counts=[0] * 10 + [4],
    )

    candidates = find_spike_candidates(counts, STRICT)

    # "new" would spike against no baseline; against the project's 40 / 4 = 10.0 it does not.
    assert candidates == [SpikeCandidate("spiking", 21, 10.0, 1_800_000_000)]


def test_new_issue_spikes_against_the_project_baseline() -> None:
    counts = ProjectCounts(
        bucket_start=1_800_000_000,
        issues={"new": IssueCounts("new", 11, [0] * 11)},
        history_totals=[0] * 9 + [10, 20],
        history_issue_counts=[0] * 9 + [2, 4],
    )

    assert find_spike_candidates(counts, STRICT) == [SpikeCandidate("new", 11, 5.0, 1_800_000_000)]


def test_batch_without_issues_has_no_candidates() -> None:
    counts = ProjectCounts(1_800_000_000, {}, [0] * 11, [0] * 11)

    assert find_spike_candidates(counts, STRICT) == []
