"""The `spikewatch` command line: one entry point, a subcommand per job.

Each command module registers its own subcommands and imports the heavy packages (Faust, FastAPI)
only when a command runs, so `spikewatch --help` stays fast.
"""

from __future__ import annotations

import typer

from spikewatch.commands import api_admin, bench, database, demo, detect, spikes, worker

app = typer.Typer(
    name="spikewatch",
    help="Spike detection for error tracking: worker, HTTP API and operator tools.",
    no_args_is_help=True,
    add_completion=False,
)

for module in (api_admin, worker, database, spikes, demo, bench, detect):
    module.register(app)


def main() -> None:
    app()
