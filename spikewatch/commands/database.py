"""`spikewatch db …`: apply or inspect the database migrations of the configured DATABASE_URL."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    db = typer.Typer(help="Database migrations (Alembic) for DATABASE_URL.", no_args_is_help=True)

    @db.command("upgrade")
    def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
        """Migrate the database up to REVISION (default: the newest)."""
        from schemas.migrate import upgrade as run_upgrade
        from schemas.settings import get_settings

        url = get_settings().database_url
        run_upgrade(url, revision)
        typer.echo(f"database at {_redact(url)} is at {revision}")

    @db.command("downgrade")
    def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base.")) -> None:
        """Migrate the database down to REVISION."""
        from schemas.migrate import downgrade as run_downgrade
        from schemas.settings import get_settings

        url = get_settings().database_url
        run_downgrade(url, revision)
        typer.echo(f"database at {_redact(url)} is at {revision}")

    @db.command("current")
    def current() -> None:
        """Print the revision the database is at."""
        from schemas.migrate import current as current_revision
        from schemas.settings import get_settings

        typer.echo(current_revision(get_settings().database_url) or "none")

    cli.add_typer(db, name="db")


def _redact(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
