"""CPU the local Redis server and Kafka broker spend while workers run: the figures SCALING.md
sizes Redis and Kafka from.

Redis reports its own CPU (``INFO cpu``: the server process, every thread, Lua included). The
broker is a local process found by the port it listens on; a broker elsewhere is not measured.
"""

from __future__ import annotations

import os
import pathlib

from redis import Redis

from bench import proc

# The state of a listening socket in /proc/net/tcp (TCP_LISTEN).
_LISTEN = "0A"


class ServerCpu:
    """CPU seconds of the Redis server and the Kafka broker so far, read together."""

    def __init__(self, redis_url: str, kafka_bootstrap: str) -> None:
        self._redis_url = redis_url
        first = kafka_bootstrap.split(",")[0].strip()
        self._kafka_pid = listening_pid(int(first.rsplit(":", 1)[1]))

    def read(self) -> tuple[float | None, float | None]:
        """(Redis, Kafka) CPU seconds; None for a server this machine cannot see. Blocks for one
        local round trip to Redis."""
        return _redis_cpu_seconds(self._redis_url), self._kafka_cpu_seconds()

    def _kafka_cpu_seconds(self) -> float | None:
        if self._kafka_pid is None:
            return None
        try:
            return proc.cpu_seconds(self._kafka_pid)
        except OSError:
            return None  # the broker went away


def _redis_cpu_seconds(url: str) -> float | None:
    redis = Redis.from_url(url, socket_timeout=5)
    try:
        info = redis.info("cpu")
    except Exception:
        return None
    finally:
        redis.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def listening_pid(port: int) -> int | None:
    """The local process that listens on TCP ``port``, or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = pathlib.Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for process in pathlib.Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            descriptors = list((process / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to read
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in inodes:
                    return int(process.name)
            except OSError:
                continue
    return None
