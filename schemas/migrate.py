"""Applies and reverts the Alembic migrations of ``schemas/migrations`` on a database URL.

The one way a spikewatch database gets its tables (CLI ``spikewatch db upgrade``, deployments,
tests). It never creates tables from the metadata directly, so every database has a history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")

_T = TypeVar("_T")


def alembic_config(database_url: str | None = None) -> Config:
    """The Alembic config shipped in this package, aimed at ``database_url`` or DATABASE_URL."""
    config = Config(str(ALEMBIC_INI))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    _outside_event_loop(lambda: command.upgrade(alembic_config(database_url), revision))


def downgrade(database_url: str, revision: str = "base") -> None:
    _outside_event_loop(lambda: command.downgrade(alembic_config(database_url), revision))


def current(database_url: str) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    return _outside_event_loop(lambda: asyncio.run(_current_revision(database_url)))


def head_revision() -> str:
    """The newest revision shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found beside {ALEMBIC_INI}")
    return head


async def _current_revision(database_url: str) -> str | None:
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_read_revision)
    finally:
        await engine.dispose()


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _outside_event_loop(work: Callable[[], _T]) -> _T:
    # The migration environment runs its own event loop (asyncio.run), which asyncio refuses inside
    # a running one; a caller already in a loop (an async CLI command, a test) gets a short thread.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spikewatch-migrate") as executor:
        return executor.submit(work).result()
