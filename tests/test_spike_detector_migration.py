"""Migration 0002 on both backends: a spike detection config stored before the detector existed
reads as the mean rule after the upgrade, the downgrade keeps the rest of the row, and upgrading
again leaves no drift from the metadata (SQLite drops the column by rebuilding the table)."""

from __future__ import annotations

import asyncio

from sqlalchemy import insert, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.migrate import downgrade, upgrade
from schemas.tables import Project, utcnow
from tests.support import databases
from tests.test_migrations import schema_drift

database_url = databases.database_url

CONFIG = "error_tracking_spike_detection_config"


async def test_rows_from_before_the_detector_read_as_mean_and_survive_the_downgrade(
    database_url: str,
) -> None:
    await asyncio.to_thread(downgrade, database_url, "0001_initial")
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(Project), [{"id": 7, "name": "shop"}])
            await connection.execute(
                text(
                    f"INSERT INTO {CONFIG} (project_id, snooze_duration_minutes, multiplier, "
                    "threshold, updated_at) VALUES (7, 30, 4, 50, :now)"
                ),
                {"now": utcnow()},
            )
        await asyncio.to_thread(upgrade, database_url)
        async with engine.connect() as connection:
            upgraded = (await connection.execute(text(f"SELECT * FROM {CONFIG}"))).mappings().one()
        await asyncio.to_thread(downgrade, database_url, "0001_initial")
        async with engine.connect() as connection:
            downgraded = (
                (await connection.execute(text(f"SELECT * FROM {CONFIG}"))).mappings().one()
            )
        await asyncio.to_thread(upgrade, database_url)
    finally:
        await engine.dispose()

    assert upgraded["detector"] == "mean"
    assert (upgraded["snooze_duration_minutes"], upgraded["multiplier"], upgraded["threshold"]) == (
        30,
        4,
        50,
    )
    assert "detector" not in downgraded
    assert (downgraded["project_id"], downgraded["multiplier"], downgraded["threshold"]) == (
        7,
        4,
        50,
    )
    assert await schema_drift(database_url) == []
