"""Where the worker's CPU goes during the throughput part: py-spy samples the running worker (no
change to it, no restart) and the samples are summarised by who spent them.

Each sample is a stack. It is charged to the innermost spikewatch stage on it (a module of
``worker/`` other than the consumer loop in ``worker/app.py`` and ``worker/consumer.py``, so
msgspec or redis-py called by a stage count as that stage), or else to the package of its
innermost frame: Faust and mode (the runtime, its producer), aiokafka (fetching, committing,
producing), SQLite's thread, the event loop (in Python, or in C when the innermost Python frame
is the one that runs uvloop), the rest.
py-spy leaves out idle samples (threads waiting in a system call), so the shares are of CPU time.
"""

from __future__ import annotations

import asyncio
import collections
import pathlib
import re
import shutil
import signal
import sys
from collections.abc import Iterable
from typing import NamedTuple

import msgspec

SAMPLES_PER_SECOND = 100
TOP_FRAMES = 12
STOP_TIMEOUT_SECONDS = 30.0
# "function (path/to/module.py:line)", as py-spy's raw format writes a frame.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^():]*):(?P<line>\d+)\)$")
# Frames of the loop that hands batches to the pipeline: they are on every stack of the worker,
# so charging a sample to them would say nothing.
_AGENT_MODULES = frozenset({"worker.app", "worker.consumer"})
# Python frames that run an event loop written in C (uvloop): a sample whose innermost Python
# frame is one of these was in the loop itself, handling I/O or, py-spy being unable to tell in
# --nonblocking mode, waiting for it.
_LOOP_RUNNERS = frozenset(
    {
        ("mode/worker.py", "Worker.execute_from_commandline"),  # the main thread's loop
    }
)
EVENT_LOOP_IN_C = "event loop in C (uvloop's I/O, and waits py-spy cannot tell apart)"
_PACKAGES = (
    ("aiosqlite/", "SQLite (aiosqlite's thread)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("faust/", "Faust and mode"),
    ("mode/", "Faust and mode"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "aiokafka"),
    ("asyncio/", "event loop (asyncio, uvloop)"),
    ("uvloop/", "event loop (asyncio, uvloop)"),
)
OTHER = "other (logging, metrics, the interpreter)"


class ProfileSummary(msgspec.Struct, frozen=True):
    samples: int
    samples_per_second: int
    # Share of samples (0-1) by who spent them, largest first.
    by_component: list[tuple[str, float]]
    # Share of samples (0-1) with the frame innermost, largest first.
    top_frames: list[tuple[str, float]]


def summarise(folded: Iterable[str], samples_per_second: int) -> ProfileSummary:
    """Summarise py-spy's raw (folded) output: one line per distinct stack, "a;b;c count"."""
    by_component: collections.Counter[str] = collections.Counter()
    by_frame: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            _Frame(match["function"], match["path"])
            for frame in stack.split(";")
            if (match := _FRAME.match(frame))
        ]
        if not frames:
            continue
        total += count
        by_component[_component(frames)] += count
        by_frame[f"{frames[-1].function} ({frames[-1].path})"] += count
    if not total:
        return ProfileSummary(0, samples_per_second, [], [])
    return ProfileSummary(
        samples=total,
        samples_per_second=samples_per_second,
        by_component=[(name, n / total) for name, n in by_component.most_common()],
        top_frames=[(name, n / total) for name, n in by_frame.most_common(TOP_FRAMES)],
    )


class _Frame(NamedTuple):
    function: str
    path: str

    @property
    def worker_module(self) -> str | None:
        """``worker.<module>`` for a frame of spikewatch's worker, else None."""
        if self.path.startswith("worker/") and self.path.endswith(".py"):
            return self.path[: -len(".py")].replace("/", ".")
        return None


def _component(frames: list[_Frame]) -> str:
    for frame in reversed(frames):
        module = frame.worker_module
        if module is not None and module not in _AGENT_MODULES:
            return f"spikewatch: {module}"
    leaf = frames[-1]
    if (leaf.path, leaf.function) in _LOOP_RUNNERS:
        return EVENT_LOOP_IN_C
    if leaf.worker_module is not None:
        return f"spikewatch: {leaf.worker_module} (the consumer loop itself)"
    for prefix, name in _PACKAGES:
        if leaf.path.startswith(prefix) or f"/{prefix}" in leaf.path:
            return name
    return OTHER


class WorkerProfiler:
    """``py-spy record`` attached to a running process until ``stop``; its samples then go to
    ``summarise``. py-spy reads the process's memory (ptrace), so it needs the rights to."""

    def __init__(self, pid: int, output: pathlib.Path) -> None:
        self.pid = pid
        self.output = output
        self._log = output.with_suffix(".log")
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        # Beside this interpreter first: the virtualenv's bin directory need not be on PATH.
        beside = pathlib.Path(sys.executable).with_name("py-spy")
        binary = str(beside) if beside.exists() else shutil.which("py-spy")
        if binary is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy): it is not installed")
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *(binary, "record", "--pid", str(self.pid), "--format", "raw"),
                *("--rate", str(SAMPLES_PER_SECOND), "--nonblocking"),
                *("--output", str(self.output)),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def stop(self) -> ProfileSummary:
        """Stop sampling (py-spy writes its file on SIGINT) and summarise what it sampled."""
        if self._process is None:
            raise RuntimeError("the profiler was never started")
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)
            await asyncio.wait_for(self._process.wait(), STOP_TIMEOUT_SECONDS)
        if not self.output.exists():
            tail = self._log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"py-spy wrote no profile: {tail}")
        with self.output.open() as folded:
            return summarise(folded, SAMPLES_PER_SECOND)
