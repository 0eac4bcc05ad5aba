"""Starts the Faust worker exactly as ``python -m faust`` does, with one probe added: a count of
the SQL statements the worker process executes (SQLAlchemy's ``before_cursor_execute`` on every
engine), served beside the worker's own metrics on its /metrics page.

The probe only counts; it changes nothing the worker does and imports nothing of the worker.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.engine import Engine

# Named apart from the worker's metrics so that it can never collide with one of them.
STATEMENTS = Counter(
    "spikewatch_bench_db_statements",
    "SQL statements executed by the worker process (counted by the benchmark's probe).",
)


def _count_statement(*_args: Any) -> None:
    STATEMENTS.inc()


def main() -> None:
    # On the Engine class, so it also counts on the engines the worker creates after this.
    event.listen(Engine, "before_cursor_execute", _count_statement)
    from faust.cli.faust import cli

    cli(prog_name="faust")


if __name__ == "__main__":
    main()
