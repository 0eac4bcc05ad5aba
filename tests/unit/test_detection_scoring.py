"""How the suite scores a detector: the first spike inside a labelled episode finds it, later ones
in the same episode count neither way, anything else is a false alarm, the first day is not
scored; and the suite itself is the same on every run."""

from __future__ import annotations

import pytest

from spikewatch.detection.evaluate import Score, score_trace
from spikewatch.detection.suite import FAMILIES, Episode, LabelledTrace, generate_suite
from spikewatch.detection.traces import Trace

LABELLED = LabelledTrace(
    family="steady",
    trace=Trace(300, 0, [0] * 100),
    spikes=[Episode(onset=20, length=2), Episode(onset=50, length=6), Episode(onset=80, length=2)],
    scored_from=10,
)


def test_first_spike_in_an_episode_finds_it_with_its_delay_and_repeats_count_neither_way() -> None:
    score = score_trace(LABELLED, [20, 21, 52, 55])

    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 0, 1)
    assert score.delays == [0, 2]


def test_spikes_outside_every_episode_are_false_alarms_unless_before_the_scored_part() -> None:
    score = score_trace(LABELLED, [5, 22, 56, 81])

    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 2, 2)
    assert score.delays == [1]


def test_precision_recall_f1_and_median_delay() -> None:
    score = Score(true_positives=8, false_positives=2, false_negatives=8, delays=[0, 0, 1, 3])

    assert (score.precision, score.recall) == (0.8, 0.5)
    assert score.f1 == pytest.approx(2 * 0.8 * 0.5 / 1.3)
    assert score.median_delay == 0.5


def test_the_suite_is_the_same_on_every_run_and_labels_every_family() -> None:
    first = list(generate_suite())
    again = list(generate_suite())

    assert [t.trace.values for t in first] == [t.trace.values for t in again]
    assert {t.family for t in first} == set(FAMILIES)
    for family in FAMILIES:
        assert sum(len(t.spikes) for t in first if t.family == family) >= 100
