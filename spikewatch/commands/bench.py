"""`spikewatch bench`: measure the worker against the machine's own ceilings and write
BENCHMARKS.md (see ``bench/``). Uses the configured Kafka and Redis; creates and deletes its own
topics and database. Run it on a quiet machine: it times the worker and shares the cores.
"""

from __future__ import annotations

import pathlib
import sys

import typer


def register(cli: typer.Typer) -> None:
    @cli.command("bench")
    def bench(
        quick: bool = typer.Option(
            False, "--quick", help="A small run that proves the benchmark works (CI)."
        ),
        events: int | None = typer.Option(
            None, "--events", min=1, help="Events to load (default 300,000; --quick: 5,000)."
        ),
        output: pathlib.Path = typer.Option(
            pathlib.Path("BENCHMARKS.md"), "--output", help="Where to write the report."
        ),
        skip_latency: bool = typer.Option(
            False, "--skip-latency", help="Leave out the detection latency part."
        ),
        skip_memory: bool = typer.Option(
            False, "--skip-memory", help="Leave out the memory-under-growth part."
        ),
        profile: bool = typer.Option(
            False,
            "--profile",
            help="Sample the worker with py-spy during the throughput part and report where "
            "its CPU goes.",
        ),
        detector: str = typer.Option(
            "mean",
            "--detector",
            help="The spike detector of every project of the run: mean or adaptive.",
        ),
    ) -> None:
        """Benchmark throughput, detection latency, cost per event and memory; write a report."""
        # Imported here: the bench loads numpy, aiokafka and the database layer, which the other
        # commands have no use for.
        import asyncio

        from bench.main import BenchOptions, run_benchmark
        from bench.report import write_report
        from schemas.settings import get_settings
        from schemas.tables import SPIKE_DETECTORS

        if detector not in SPIKE_DETECTORS:
            raise typer.BadParameter(
                f"{detector!r} is not one of {', '.join(SPIKE_DETECTORS)}", param_hint="--detector"
            )
        settings = get_settings()
        options = BenchOptions.sized(
            quick=quick,
            kafka_bootstrap=settings.kafka_bootstrap_servers,
            redis_url=settings.redis_url,
            command=" ".join(["spikewatch", *sys.argv[1:]]),
            events=events,
            skip_latency=skip_latency,
            skip_memory=skip_memory,
            profile=profile,
            detector=detector,
        )
        report = asyncio.run(run_benchmark(options))
        write_report(report, output)
        typer.echo(f"wrote {output}")
