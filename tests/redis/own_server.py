"""A redis-server a test starts and stops itself (to play an outage), on a free port, so stopping
it never disturbs the shared Redis other tests use."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError


def no_retry_client(port: int, **kwargs: Any) -> Redis:
    # The stage must fail open quickly; retries with backoff would stall every failing batch.
    return Redis(port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, **kwargs)


class OwnRedisServer:
    """Started with ``--save ''``: a restart comes back empty, as after losing its memory."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed on PATH for the outage tests"
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )

    async def wait_ready(self) -> None:
        client = no_retry_client(self.port)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except RedisError:
                    await asyncio.sleep(0.05)
            raise AssertionError("own redis-server did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
