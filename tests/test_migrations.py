"""The migrations build exactly the tables of schemas/tables.py, and remove them, on both backends.

Every test starts from a database that ``tests.support.databases`` migrated to head, on SQLite and
on PostgreSQL; the drift checks compare what the database reflects with the SQLAlchemy metadata.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    UniqueConstraint,
    delete,
    func,
    insert,
    inspect,
    make_url,
    pool,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.migrate import current, downgrade, head_revision, upgrade
from schemas.tables import Base, Issue, Project
from tests.support import databases
from tests.support.databases import fresh_database

database_url = databases.database_url

SPIKEWATCH_TABLES = set(Base.metadata.tables)

_T = TypeVar("_T")


async def _on_sync_connection(url: str, work: Callable[[Connection], _T]) -> _T:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def schema_drift(url: str) -> list[Any]:
    """Alembic's autogenerate diff between the database and the metadata; empty means no drift."""
    return await _on_sync_connection(
        url, lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
    )


async def table_names(url: str) -> set[str]:
    return await _on_sync_connection(url, lambda sync: set(inspect(sync).get_table_names()))


def _named_constraints(sync: Connection) -> dict[str, dict[str, set[str]]]:
    inspector = inspect(sync)
    return {
        table: {
            "primary key": {inspector.get_pk_constraint(table)["name"]},
            "foreign keys": {fk["name"] for fk in inspector.get_foreign_keys(table)},
            "unique": {uq["name"] for uq in inspector.get_unique_constraints(table)},
            # PostgreSQL also lists the index behind each unique constraint; that one is not ours.
            "indexes": {
                ix["name"]
                for ix in inspector.get_indexes(table)
                if "duplicates_constraint" not in ix
            },
        }
        for table in SPIKEWATCH_TABLES
    }


def _expected_constraints(sync: Connection) -> dict[str, dict[str, set[str]]]:
    # Rendered by the dialect, so PostgreSQL's 63-character truncation is part of the expectation.
    name = sync.dialect.identifier_preparer.format_constraint
    return {
        table.name: {
            "primary key": {name(table.primary_key)},
            "foreign keys": {name(fk) for fk in table.foreign_key_constraints},
            "unique": {name(c) for c in table.constraints if isinstance(c, UniqueConstraint)},
            "indexes": {name(ix) for ix in table.indexes},
        }
        for table in Base.metadata.sorted_tables
    }


async def constraint_names(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(reflected, expected) names of every key, constraint and index of the spikewatch tables."""
    return await _on_sync_connection(
        url, lambda sync: (_named_constraints(sync), _expected_constraints(sync))
    )


async def test_upgrade_to_head_creates_exactly_the_metadata_tables(database_url: str) -> None:
    assert await table_names(database_url) == SPIKEWATCH_TABLES | {"alembic_version"}
    assert await schema_drift(database_url) == []
    assert await asyncio.to_thread(current, database_url) == head_revision()


async def test_constraints_and_indexes_carry_the_naming_convention_names(
    database_url: str,
) -> None:
    reflected, expected = await constraint_names(database_url)

    assert reflected == expected
    assert expected["error_tracking_issue_fingerprints"]["unique"] == {
        "uq_error_tracking_issue_fingerprints_project_id_fingerprint"
    }


async def test_downgrade_to_base_leaves_no_spikewatch_table(database_url: str) -> None:
    await asyncio.to_thread(downgrade, database_url)

    assert await table_names(database_url) == {"alembic_version"}
    assert await asyncio.to_thread(current, database_url) is None
    drift = await schema_drift(database_url)
    assert {table.name for kind, table in drift if kind == "add_table"} == SPIKEWATCH_TABLES


async def test_upgrade_after_downgrade_rebuilds_the_schema_without_drift(database_url: str) -> None:
    await asyncio.to_thread(downgrade, database_url)
    await asyncio.to_thread(upgrade, database_url)

    assert await table_names(database_url) == SPIKEWATCH_TABLES | {"alembic_version"}
    assert await schema_drift(database_url) == []
    reflected, expected = await constraint_names(database_url)
    assert reflected == expected


async def test_upgrade_at_head_changes_nothing(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)

    assert await asyncio.to_thread(current, database_url) == head_revision()
    assert await schema_drift(database_url) == []


async def test_migrations_can_be_run_from_inside_a_running_event_loop(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'called-from-a-loop.db'}"

    upgrade(url)
    assert current(url) == head_revision()
    downgrade(url)
    assert current(url) is None


async def test_deleting_a_project_cascades_to_its_issues(database_url: str) -> None:
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                await connection.execute(text("PRAGMA foreign_keys=ON"))
            await connection.execute(insert(Project).values(id=7, name="web"))
            await connection.execute(insert(Issue).values(project_id=7, name="TypeError"))
            await connection.execute(delete(Project).where(Project.id == 7))
            remaining = await connection.scalar(select(func.count()).select_from(Issue))
    finally:
        await engine.dispose()

    assert remaining == 0


@pytest.mark.parametrize(
    "kind", [pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_fresh_database_is_removed_on_exit(
    kind: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    admin_url = request.getfixturevalue("postgres_url") if kind == "postgresql" else None

    async with fresh_database(kind, tmp_path, admin_url) as url:
        assert await asyncio.to_thread(current, url) == head_revision()

    name = make_url(url).database
    if kind == "sqlite":
        assert not await asyncio.to_thread(pathlib.Path(name).exists)
    else:
        exists = await _on_sync_connection(
            admin_url,
            lambda sync: sync.scalar(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            ),
        )
        assert exists == 0
