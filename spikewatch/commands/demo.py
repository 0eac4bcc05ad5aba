"""`spikewatch demo`: drive a running worker and API with a background of errors and a burst."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import typer


def register(cli: typer.Typer) -> None:
    @cli.command("demo")
    def demo(
        api_url: str = typer.Option(
            "http://127.0.0.1:8000", "--api-url", help="Base URL of the running spikewatch API."
        ),
    ) -> None:
        """Send a steady hour of errors then a burst of one issue; print the spike it causes."""
        sys.exit(asyncio.run(_demo(api_url)))


async def _demo(api_url: str) -> int:
    from api.admin import create_api_key, create_project
    from schemas.db import make_engine, make_sessionmaker
    from schemas.settings import get_settings
    from spikewatch.demo import ApiClient, run_demo
    from worker.spikes_tail import format_spike_line

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        sessionmaker = make_sessionmaker(engine)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        project = await create_project(sessionmaker, f"demo shop {stamp}")
        _, key = await create_api_key(
            sessionmaker,
            label=f"demo key {stamp}",
            scopes=["error_tracking:read", "error_tracking:write"],
            project_ids=[project.id],
        )
    finally:
        await engine.dispose()

    out = sys.stdout
    out.write(f"project {project.id} ({project.name})\n")
    result = await run_demo(settings, ApiClient(api_url, key), project.id, out)
    out.write("\nspike from the topic (as an alerting system sees it):\n")
    out.write(f"  {format_spike_line(result.spike)}\n")
    out.write(f"time from the burst's first event to the spike: {result.seconds_to_spike:.2f} s\n")
    out.write("\nspike events from the API:\n")
    for row in result.api_spikes:
        out.write(
            f"  {row['detected_at']}  {row['issue']['name']}: {row['issue']['description']}  "
            f"current {row['current_bucket_value']} vs baseline {row['computed_baseline']}\n"
        )
    out.write(f"stack frames recorded for the project: {result.stack_frame_count}\n")
    base = f"{api_url}/api/projects/{project.id}/error_tracking"
    out.write(
        f"\nAPI key for this demo project (shown once): {key}\n"
        f'try: curl -H "Authorization: Bearer {key}" {base}/spike_events/\n'
    )
    return 0
