"""The worker as `faust -A worker.app worker` runs it, on a clock the test sets: its pipeline reads
"now" (epoch seconds) from the file that SPIKEWATCH_TEST_CLOCK_FILE names, so a test can play
hours of buckets in seconds. Nothing else of the worker changes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from worker import runtime

CLOCK_FILE = Path(os.environ["SPIKEWATCH_TEST_CLOCK_FILE"])
_create = runtime.WorkerRuntime.create


def clock_from_file() -> float:
    return float(CLOCK_FILE.read_text())


def _create_on_test_clock(settings: Any, send: Any, **_: Any) -> runtime.WorkerRuntime:
    return _create(settings, send, clock=clock_from_file)


if __name__ == "__main__":
    runtime.WorkerRuntime.create = _create_on_test_clock  # type: ignore[method-assign]
    from worker.app import app

    sys.argv = ["faust", "-A", "worker.app", "worker", "-l", "info"]
    app.main()
