"""`spikewatch detect`: replay a trace of one issue's bucket counts through the worker's spike rule
and print its spikes, or (``--evaluate``) score the detectors on the labelled suite."""

from __future__ import annotations

from pathlib import Path

import typer

from schemas.tables import (
    DEFAULT_SNOOZE_DURATION_MINUTES,
    DEFAULT_SPIKE_MULTIPLIER,
    DEFAULT_SPIKE_THRESHOLD,
    SPIKE_DETECTORS,
)

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
        multiplier: int | None = typer.Option(
            None, "--multiplier", min=1, help=f"Default {DEFAULT_SPIKE_MULTIPLIER}."
        ),
        threshold: int | None = typer.Option(
            None, "--threshold", min=1, help=f"Default {DEFAULT_SPIKE_THRESHOLD}."
        ),
        snooze: int | None = typer.Option(
            None,
            "--snooze",
            min=1,
            help=f"Snooze, minutes. Default {DEFAULT_SNOOZE_DURATION_MINUTES}.",
        ),
        bucket_seconds: int = typer.Option(300, "--bucket-seconds", min=1),
        sensitivity: float | None = typer.Option(
            None,
            "--sensitivity",
            min=0.0,
            help="adaptive: standard deviations over the expected count a spike must clear. "
            "Default: the worker's (DETECTION.md).",
        ),
        evaluate: bool = typer.Option(
            False,
            "--evaluate",
            help="Score both detectors on the labelled suite (DETECTION.md) instead, with the "
            "suite's multiplier, threshold and snooze unless given.",
        ),
    ) -> None:
        """Print the spikes of TRACE: bucket start (ISO 8601), current count, baseline."""
        from worker.spike_rule import SpikeConfig

        def given(base: SpikeConfig) -> SpikeConfig:
            return SpikeConfig(
                multiplier=base.multiplier if multiplier is None else multiplier,
                threshold=base.threshold if threshold is None else threshold,
                snooze_duration_minutes=(
                    base.snooze_duration_minutes if snooze is None else snooze
                ),
                detector=detector,
                tail_sigmas=base.tail_sigmas if sensitivity is None else sensitivity,
            )

        if evaluate:
            from spikewatch.detection.evaluate import print_evaluation
            from spikewatch.detection.suite import SUITE_CONFIG

            print_evaluation(given(SUITE_CONFIG))
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
        for spike in replay(counts, given(SpikeConfig())):
            typer.echo(spike_line(spike.bucket_start, spike.current, spike.baseline))


def _bad_input(message: str) -> None:
    typer.echo(f"spikewatch detect: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)
