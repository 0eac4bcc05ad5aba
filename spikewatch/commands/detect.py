"""`spikewatch detect`: replay a trace of one issue's bucket counts through the worker's spike rule
and print its spikes, or (``--evaluate``) score the detectors on the labelled suite."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from schemas.tables import (
    DEFAULT_SNOOZE_DURATION_MINUTES,
    DEFAULT_SPIKE_MULTIPLIER,
    DEFAULT_SPIKE_THRESHOLD,
    SPIKE_DETECTORS,
)
from worker.spike_rule import DEFAULT_TAIL_SIGMAS

# Bad input (a trace that cannot be read) exits like a usage error.
EXIT_BAD_INPUT = 2


def register(cli: typer.Typer) -> None:
    @cli.command("detect")
    def detect(
        trace: Path | None = typer.Argument(
            None, help="CSV with header timestamp,value: one row per bucket (start, count)."
        ),
        detector: str = typer.Option(
            "mean", "--detector", help=f"One of: {', '.join(SPIKE_DETECTORS)}."
        ),
        multiplier: int = typer.Option(DEFAULT_SPIKE_MULTIPLIER, "--multiplier", min=1),
        threshold: int = typer.Option(DEFAULT_SPIKE_THRESHOLD, "--threshold", min=1),
        snooze: int = typer.Option(
            DEFAULT_SNOOZE_DURATION_MINUTES, "--snooze", min=1, help="Snooze, minutes."
        ),
        bucket_seconds: int = typer.Option(300, "--bucket-seconds", min=1),
        sensitivity: float = typer.Option(
            DEFAULT_TAIL_SIGMAS,
            "--sensitivity",
            min=0.0,
            help="adaptive: standard deviations over the expected count a spike must clear.",
        ),
        evaluate: bool = typer.Option(
            False,
            "--evaluate",
            help="Score both detectors on the labelled suite (DETECTION.md) instead; the suite "
            "has its own multiplier, threshold and snooze.",
        ),
    ) -> None:
        """Print the spikes of TRACE: bucket start (ISO 8601), current count, baseline."""
        from worker.spike_rule import SpikeConfig

        if evaluate:
            from spikewatch.detection.evaluate import print_evaluation
            from spikewatch.detection.suite import SUITE_CONFIG

            print_evaluation(replace(SUITE_CONFIG, tail_sigmas=sensitivity))
            return
        if detector not in SPIKE_DETECTORS:
            _bad_input(f"--detector must be one of {', '.join(SPIKE_DETECTORS)}, not {detector!r}")
        if trace is None:
            _bad_input("a TRACE.csv is needed (or --evaluate)")

        from spikewatch.detection.replay import replay, spike_line
        from spikewatch.detection.traces import TraceError, read_trace

        try:
            counts = read_trace(trace, bucket_seconds)
        except TraceError as exc:
            _bad_input(str(exc))
        config = SpikeConfig(
            multiplier=multiplier,
            threshold=threshold,
            snooze_duration_minutes=snooze,
            detector=detector,
            tail_sigmas=sensitivity,
        )
        for spike in replay(counts, config):
            typer.echo(spike_line(spike.bucket_start, spike.current, spike.baseline))


def _bad_input(message: str) -> None:
    typer.echo(f"spikewatch detect: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)
