"""`spikewatch spikes tail`: watch the spike topic as an alerting system would."""

from __future__ import annotations

import asyncio
import sys

import typer


def register(cli: typer.Typer) -> None:
    spikes = typer.Typer(help="Spike events.", no_args_is_help=True)

    @spikes.command("tail")
    def tail(
        from_beginning: bool = typer.Option(
            False, "--from-beginning", help="Replay the topic from its first spike."
        ),
        max_events: int | None = typer.Option(
            None, "--max", min=1, help="Stop after this many spikes."
        ),
    ) -> None:
        """Print spikes from the spike topic as they arrive."""
        from schemas.settings import get_settings
        from worker.spikes_tail import tail_spikes

        settings = get_settings()
        asyncio.run(
            tail_spikes(
                settings.kafka_bootstrap_servers,
                settings.topic_spike_events,
                from_beginning=from_beginning,
                out=sys.stdout,
                max_events=max_events,
            )
        )

    cli.add_typer(spikes, name="spikes")
