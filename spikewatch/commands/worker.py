"""`spikewatch worker`: run the stream worker (the Faust app of ``worker.app``) until stopped."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    @cli.command("worker")
    def worker(
        loglevel: str = typer.Option("info", "--loglevel", "-l", help="Log level of the worker."),
    ) -> None:
        """Consume exception events: issues, frames, suppression, limits, forwarding, spikes."""
        # Imported here: building the Faust app reads the settings and loads Faust, which
        # `spikewatch --help` and the other commands have no use for.
        import faust

        from worker.app import app

        faust.Worker(app, loglevel=loglevel).execute_from_commandline()
