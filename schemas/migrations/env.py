"""Alembic environment: runs the revisions in ``versions/`` on an async database URL.

The URL comes from ``schemas.migrate`` (``config.attributes["database_url"]``) or, for the plain
``alembic`` command, from the settings. Tables are only ever created here, never by ``create_all``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.settings import get_settings
from schemas.tables import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    # Kept out of the ini's sqlalchemy.url: configparser would choke on a percent-encoded password.
    return config.attributes.get("database_url") or get_settings().database_url


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def run_migrations_offline() -> None:
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_is_sqlite(url),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    # A bare engine on purpose, not schemas.db.make_engine: that one turns SQLite foreign keys on,
    # and a batch-mode table rebuild with foreign keys on would cascade-delete the child rows.
    engine = create_async_engine(_database_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
