"""Fresh, fully migrated test databases on SQLite and PostgreSQL, and the ``database_url`` fixture.

Every database is built by the real migrations (never ``create_all``) and removed afterwards. A
PostgreSQL database is only created when a test asks for that kind: SQLite-only runs need no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, make_url, pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from schemas.migrate import upgrade

DATABASE_KINDS = ("sqlite", "postgresql")
_KIND_MARKS = {"sqlite": (), "postgresql": (pytest.mark.postgres,)}


@contextlib.asynccontextmanager
async def fresh_database(
    kind: str, tmp_path: pathlib.Path, postgres_admin_url: str | None
) -> AsyncIterator[str]:
    """Yield the async URL of a new, empty, fully migrated database of that kind; drop it after."""
    if kind == "sqlite":
        empty_database = _sqlite_database(tmp_path)
    elif kind == "postgresql":
        if postgres_admin_url is None:
            raise ValueError("a PostgreSQL test database needs the admin URL (TEST_POSTGRES_URL)")
        empty_database = _postgres_database(postgres_admin_url)
    else:
        raise ValueError(f"unknown database kind {kind!r}; expected one of {DATABASE_KINDS}")
    async with empty_database as url:
        await asyncio.to_thread(upgrade, url)
        yield url


@contextlib.asynccontextmanager
async def _sqlite_database(tmp_path: pathlib.Path) -> AsyncIterator[str]:
    path = tmp_path / f"spikewatch-{secrets.token_hex(4)}.db"
    try:
        yield f"sqlite+aiosqlite:///{path}"
    finally:
        # WAL mode (schemas.db) leaves two companion files beside the database.
        for leftover in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        ):
            leftover.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def _postgres_database(admin_url: str) -> AsyncIterator[str]:
    name = f"sw_{secrets.token_hex(6)}"
    # CREATE/DROP DATABASE refuse to run inside a transaction.
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            # FORCE: a test that forgot to dispose its engine must not leave the database behind.
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest_asyncio.fixture(
    params=[pytest.param(kind, id=kind, marks=_KIND_MARKS[kind]) for kind in DATABASE_KINDS]
)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[str]:
    """A fresh migrated database per test, once on each kind in DATABASE_KINDS.

    Register it in a conftest with ``pytest_plugins = ("tests.support.databases",)`` or import it
    there; run one kind only with ``-m "not postgres"`` or ``-k sqlite``.
    """
    kind: str = request.param
    admin_url = request.getfixturevalue("postgres_url") if kind == "postgresql" else None
    async with fresh_database(kind, tmp_path, admin_url) as url:
        yield url


@contextlib.contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` executes inside the block, in order."""
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)
