"""`spikewatch api`, `spikewatch projects …` and `spikewatch keys …`: serve the HTTP API and
manage the projects and personal API keys it authorises, in the configured DATABASE_URL.

A new key's plaintext is printed once, by `keys create`; nothing can show it again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer

ResultT = TypeVar("ResultT")


def register(cli: typer.Typer) -> None:
    @cli.command("api")
    def api(
        host: str | None = typer.Option(None, help="Interface to bind (default: API_HOST)."),
        port: int | None = typer.Option(None, help="Port to bind (default: API_PORT)."),
    ) -> None:
        """Serve the HTTP API (OpenAPI document at /api/schema/)."""
        from api.server import run
        from schemas.settings import get_settings

        settings = get_settings()
        run(host or settings.api_host, port if port is not None else settings.api_port)

    projects = typer.Typer(
        help="Projects: what API keys and events belong to.", no_args_is_help=True
    )

    @projects.command("create")
    def create_project(name: str = typer.Argument(..., help="A name for people to read.")) -> None:
        """Create a project and print its id."""
        from api import admin

        project = _run(lambda sessionmaker: admin.create_project(sessionmaker, name))
        typer.echo(f"project {project.id} created: {project.name}")

    @projects.command("list")
    def list_projects() -> None:
        """List every project: id and name."""
        from api import admin

        for project in _run(admin.list_projects):
            typer.echo(f"{project.id}\t{project.name}")

    keys = typer.Typer(help="Personal API keys for the HTTP API.", no_args_is_help=True)

    @keys.command("create")
    def create_key(
        project: list[int] = typer.Option(
            [], "--project", help="A project the key may touch (repeat for more)."
        ),
        all_projects: bool = typer.Option(
            False, "--all-projects", help="Let the key touch every project, present and future."
        ),
        scopes: str = typer.Option(
            "error_tracking:read",
            help="Comma-separated: error_tracking:read, error_tracking:write or *.",
        ),
        label: str = typer.Option("", help="What the key is for, to recognise it later."),
    ) -> None:
        """Create a key and print it: this is the only time it is shown."""
        from api import admin

        if bool(project) == all_projects:
            _fail("give either --project ID (repeatable) or --all-projects")
        scope_list = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        key, plaintext = _run(
            lambda sessionmaker: admin.create_api_key(
                sessionmaker,
                label=label,
                scopes=scope_list,
                project_ids=None if all_projects else project,
            )
        )
        typer.echo(plaintext)
        typer.echo(
            f"key {key.id} ({', '.join(key.scopes)}) created; store it now, it is not shown again",
            err=True,
        )

    @keys.command("list")
    def list_keys() -> None:
        """List keys (masked): id, label, scopes, projects, last use, revocation."""
        from api import admin

        for key in _run(admin.list_api_keys):
            projects_text = (
                "all" if key.project_ids is None else ",".join(map(str, key.project_ids))
            )
            typer.echo(
                "\t".join(
                    (
                        str(key.id),
                        key.mask_value,
                        key.label or "-",
                        ",".join(key.scopes),
                        f"projects={projects_text}",
                        f"last_used={key.last_used_at.isoformat() if key.last_used_at else '-'}",
                        f"revoked={key.revoked_at.isoformat() if key.revoked_at else '-'}",
                    )
                )
            )

    @keys.command("revoke")
    def revoke_key(key_id: str = typer.Argument(..., help="The id shown by `keys list`.")) -> None:
        """Revoke a key: requests with it are refused from now on."""
        from api import admin

        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            _fail(f"{key_id!r} is not a key id")
        if not _run(lambda sessionmaker: admin.revoke_api_key(sessionmaker, parsed)):
            _fail(f"no active key with id {key_id}")
        typer.echo(f"key {key_id} revoked")

    cli.add_typer(projects, name="projects")
    cli.add_typer(keys, name="keys")


def _run(action: Callable[..., Awaitable[ResultT]]) -> ResultT:
    """Run one admin action against DATABASE_URL; a refused input exits with its message."""
    from schemas.db import make_engine, make_sessionmaker
    from schemas.settings import get_settings

    async def run() -> ResultT:
        engine = make_engine(get_settings().database_url)
        try:
            return await action(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except ValueError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)
