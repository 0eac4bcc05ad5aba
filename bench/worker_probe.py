"""Starts the Faust worker exactly as ``python -m faust`` does, with two probes added and served
beside the worker's own metrics on its /metrics page: the SQL statements the worker process
executes (SQLAlchemy's ``before_cursor_execute`` on every engine), by kind, and its round trips
to Redis (each write of a command or of a whole pipeline, which then awaits its replies).

The probes only count; they change nothing the worker does and import nothing of the worker.
"""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import Counter
from redis.asyncio.connection import AbstractConnection
from sqlalchemy import event
from sqlalchemy.engine import Engine

# Named apart from the worker's metrics so that they can never collide with one of them.
STATEMENTS = Counter(
    "spikewatch_bench_db_statements",
    "SQL statements executed by the worker process (counted by the benchmark's probe).",
    labelnames=["statement"],
)
REDIS_ROUND_TRIPS = Counter(
    "spikewatch_bench_redis_round_trips",
    "Commands or whole pipelines the worker process wrote to Redis, each then awaiting its "
    "replies (counted by the benchmark's probe).",
)
# The table a statement is about: the first one it inserts into, updates or reads from.
_TABLE = re.compile(r"\b(?:INTO|UPDATE|FROM)\s+\"?(\w+)", re.IGNORECASE)


def statement_kind(statement: str) -> str:
    """``"<verb> <table>"`` in lower case, e.g. ``"insert spike_events"``; the verb alone when
    no table is named (``"pragma"``)."""
    verb = statement.lstrip().split(None, 1)[0].lower() if statement.strip() else "empty"
    table = _TABLE.search(statement)
    return f"{verb} {table.group(1).lower()}" if table else verb


def _count_statement(
    _conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool
) -> None:
    STATEMENTS.labels(statement=statement_kind(statement)).inc()


def _count_redis_round_trips() -> None:
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        REDIS_ROUND_TRIPS.inc()
        await send(self, command, check_health)

    # On the class, so it also counts on the connections the worker opens after this.
    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


def main() -> None:
    # On the Engine class, so it also counts on the engines the worker creates after this.
    event.listen(Engine, "before_cursor_execute", _count_statement)
    _count_redis_round_trips()
    from faust.cli.faust import cli

    cli(prog_name="faust")


if __name__ == "__main__":
    main()
