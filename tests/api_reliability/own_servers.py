"""A PostgreSQL cluster and a redis-server that a test owns, on free loopback ports, so that it
can stop and restart them to play an outage without ever touching the shared services.

The cluster is made by initdb and run by pg_ctl as the ``postgres`` user (PostgreSQL refuses to
run as root), in a temporary directory removed afterwards.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from loadtest.api_server import free_loopback_port

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")
PG_USER = "spikewatch"
START_TIMEOUT_SECONDS = 60


def _as_postgres(*command: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT_SECONDS,
    )


class OwnPostgres:
    """A throwaway cluster: trust authentication on 127.0.0.1 only, fsync off (nothing in it
    needs to survive a power cut)."""

    def __init__(self) -> None:
        self.port = free_loopback_port()
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="spikewatch-pg-"))
        self.data = self.root / "data"
        shutil.chown(self.root, "postgres", "postgres")
        _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut off, as when a database server goes away."""
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def freeze(self) -> None:
        """Stop the server and its sessions dead (SIGSTOP), like a host that stopped answering:
        connections stay open and nothing ever replies."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def _pids(self) -> list[int]:
        """The postmaster of this cluster and its children, never another server's processes."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = pathlib.Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text()
        return [postmaster, *map(int, children.split())]

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.thaw()
            _as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis:
    """A redis-server with nothing persisted: a restart comes back empty."""

    def __init__(self) -> None:
        self.port = free_loopback_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server must be on PATH"
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not listen on port {self.port}")

    def freeze(self) -> None:
        """Stop the server dead (SIGSTOP): connections stay open and nothing ever replies."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None:
            self.thaw()
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
