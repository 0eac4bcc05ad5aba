"""Scoring the detectors on the labelled suite: each trace is replayed through the worker's spike
rule (``replay``) and its spikes are matched with the labelled ones.

A labelled spike is found when the first spike the detector emits inside its episode comes at
most ``length - 1`` buckets after its onset (the delay, in buckets); more spikes inside the same
episode are neither credited nor charged. Any other spike is a false alarm. Only the part of a
trace after its first day is scored.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from spikewatch.detection.replay import replay
from spikewatch.detection.suite import SUITE_CONFIG, SUITE_SEED, LabelledTrace, generate_suite
from worker.spike_rule import ADAPTIVE, MEAN, SpikeConfig

DETECTORS = (MEAN, ADAPTIVE)


@dataclass(slots=True)
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    delays: list[int] = field(default_factory=list)  # of the spikes found, in buckets

    def add(self, other: Score) -> None:
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        self.delays += other.delays

    @property
    def precision(self) -> float:
        emitted = self.true_positives + self.false_positives
        return self.true_positives / emitted if emitted else 1.0

    @property
    def recall(self) -> float:
        labelled = self.true_positives + self.false_negatives
        return self.true_positives / labelled if labelled else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def median_delay(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None


def score_trace(labelled: LabelledTrace, spike_buckets: Sequence[int]) -> Score:
    """Match the buckets (indices into the trace) at which spikes were emitted with the labels."""
    score = Score()
    matched: set[int] = set()
    for bucket in spike_buckets:
        if bucket < labelled.scored_from:
            continue
        episode = next(
            (i for i, e in enumerate(labelled.spikes) if e.onset <= bucket < e.onset + e.length),
            None,
        )
        if episode is None:
            score.false_positives += 1
        elif episode not in matched:
            matched.add(episode)
            score.true_positives += 1
            score.delays.append(bucket - labelled.spikes[episode].onset)
    score.false_negatives = len(labelled.spikes) - len(matched)
    return score


def evaluate(traces: Iterable[LabelledTrace], config: SpikeConfig) -> dict[str, Score]:
    """Score per family, and over all families under ``"total"``."""
    scores: dict[str, Score] = defaultdict(lambda: Score())
    for labelled in traces:
        trace = labelled.trace
        spikes = replay(trace, config)
        buckets = [s.bucket_start // trace.bucket_seconds - trace.first_bucket for s in spikes]
        score = score_trace(labelled, buckets)
        scores[labelled.family].add(score)
    total = Score()
    for score in scores.values():
        total.add(score)
    return {**scores, "total": total}


def evaluation_table(suite: Sequence[LabelledTrace], config: SpikeConfig) -> str:
    """Precision, recall, F1 and median delay per family and in total, for every detector."""
    lines = [
        "detector  family        spikes  found  false  precision  recall     F1  median delay",
    ]
    for detector in DETECTORS:
        scores = evaluate(suite, replace(config, detector=detector))
        for family, score in scores.items():
            delay = score.median_delay
            lines.append(
                f"{detector:<9} {family:<12} {score.true_positives + score.false_negatives:>7}"
                f" {score.true_positives:>6} {score.false_positives:>6}"
                f" {score.precision:>10.3f} {score.recall:>7.3f} {score.f1:>6.3f}"
                f" {'-' if delay is None else f'{delay:g}':>13}"
            )
    return "\n".join(lines)


def print_evaluation(config: SpikeConfig = SUITE_CONFIG) -> None:
    suite = list(generate_suite())
    print(
        f"Suite: {len(suite)} traces from seed {SUITE_SEED}; multiplier {config.multiplier}, "
        f"threshold {config.threshold}, snooze {config.snooze_duration_minutes} min, "
        f"adaptive sensitivity {config.tail_sigmas:g}"
    )
    print(evaluation_table(suite, config))
