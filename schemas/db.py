"""Async database engines and sessions for the API and the worker (SQLite or PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; on SQLite, foreign keys on and WAL so the API and worker can share it."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, **kwargs)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(database_url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
