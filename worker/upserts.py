"""SQL building blocks of the worker's batched insert-or-get writes, on PostgreSQL and SQLite.

Concurrent workers race to create the same issue, frame or symbol set; the unique constraint picks
one winner and the others must skip silently (never fail, never overwrite) and then read the winner.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

T = TypeVar("T")

# Rows per statement: far below the bound-parameter limits of SQLite (32766) and asyncpg (32767)
# even for the widest row the worker writes.
ROWS_PER_STATEMENT = 500


def insert_if_absent(model: Any, dialect_name: str) -> Insert:
    """``INSERT .. ON CONFLICT DO NOTHING`` for ``model`` on the session's dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing()
    raise ValueError(f"unsupported database dialect {dialect_name!r}")


def chunked(items: Sequence[T], size: int = ROWS_PER_STATEMENT) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pairs_match(
    project_column: Any, value_column: Any, pairs: Sequence[tuple[int, str]]
) -> ColumnElement[bool]:
    """``(project, value) IN pairs`` as an OR of per-project IN lists (portable, uses indexes)."""
    by_project: dict[int, list[str]] = {}
    for project_id, value in pairs:
        by_project.setdefault(project_id, []).append(value)
    return or_(
        *(
            and_(project_column == project_id, value_column.in_(values))
            for project_id, values in by_project.items()
        )
    )
