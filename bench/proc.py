"""What the kernel knows about a process: CPU seconds, resident memory and its TCP peers.

Read from /proc (psutil is not a dependency), so the figures are the measured process's alone.
Never starts, signals or changes a process.
"""

from __future__ import annotations

import os
import pathlib

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# utime and stime (clock ticks) are fields 14 and 15 of /proc/<pid>/stat, numbered as in proc(5).
_UTIME_FIELD = 14
_STIME_FIELD = 15


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time of every thread of the process so far."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; the fields after its last ')' cannot.
    fields = stat[stat.rindex(")") + 2 :].split()
    # What remains starts at field 3 (state), so field N is at index N - 3.
    ticks = int(fields[_UTIME_FIELD - 3]) + int(fields[_STIME_FIELD - 3])
    return ticks / CLOCK_TICKS_PER_SECOND


def resident_bytes(pid: int | str = "self") -> int:
    """Current resident set size (VmRSS)."""
    return _status_kilobytes(pid, "VmRSS") * 1024


def peak_resident_bytes(pid: int | str = "self") -> int:
    """Highest resident set size the process ever had (VmHWM)."""
    return _status_kilobytes(pid, "VmHWM") * 1024


def local_ports_connected_to(pid: int, remote_port: int) -> set[int]:
    """Local TCP ports of the process's sockets whose peer listens on ``remote_port``: how the
    bench tells the worker's Redis connections apart from everyone else's."""
    inodes = set()
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed between listing and reading
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = pathlib.Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def _status_kilobytes(pid: int | str, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"/proc/{pid}/status has no {field}")
