"""Runs the API in a child process (uvicorn on a loopback socket made here), so that load and
fault tests talk to it over real sockets from another process, as clients do.

It only starts and stops that child; the database and Redis are the caller's, passed through the
child's environment. It never binds anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from api.server import KEEP_ALIVE_TIMEOUT_SECONDS

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
LISTEN_BACKLOG = 2048
_LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class ApiProcess:
    base_url: str
    pid: int
    log_path: pathlib.Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _listening_socket() -> socket.socket:
    """The API's listening socket, made here and handed to uvicorn (``--fd``) with TCP_NODELAY,
    which its connections inherit. uvicorn's own socket for ``--workers`` lacks it, and then each
    answer on a kept-alive connection waits about 40 ms for the client's delayed ACK."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(LISTEN_BACKLOG)
    return listener


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_api(
    database_url: str,
    redis_url: str,
    *,
    workers: int = 1,
    access_log: bool = False,
    log_level: str = "warning",
    log_config: pathlib.Path | None = None,
) -> Iterator[ApiProcess]:
    """The API on ``database_url`` and ``redis_url``, served until the block ends; its output
    (uvicorn's, and the app's with ``log_config``, a ``logging.config`` JSON file) is kept in
    ``log_path`` meanwhile."""
    listener = _listening_socket()
    port = listener.getsockname()[1]
    log_dir = pathlib.Path(tempfile.mkdtemp(prefix="spikewatch-api-"))
    log_path = log_dir / "uvicorn.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:create_app",
        "--factory",
        "--fd",
        str(listener.fileno()),
        "--workers",
        str(workers),
        "--log-level",
        log_level,
        "--timeout-keep-alive",
        str(KEEP_ALIVE_TIMEOUT_SECONDS),
        "--access-log" if access_log else "--no-access-log",
        *(["--log-config", str(log_config)] if log_config is not None else []),
    ]
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    with listener, log_path.open("wb") as log:
        # A session of its own, so that stopping it also stops the workers uvicorn forked.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=[listener.fileno()],
        )
    api = ApiProcess(base_url=f"http://127.0.0.1:{port}", pid=process.pid, log_path=log_path)
    try:
        _wait_until_answering(api, process)
        yield api
    except BaseException as exc:
        # The server's side of whatever went wrong, before its log is removed with its directory.
        exc.add_note(f"the API's log ended with:\n{_tail(api)}")
        raise
    finally:
        _stop(process)
        shutil.rmtree(log_dir, ignore_errors=True)


def _wait_until_answering(api: ApiProcess, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}:\n{_tail(api)}")
        try:
            # Any answer will do: /_health is 503 while a backing service is down, by design.
            httpx.get(f"{api.base_url}/_health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the API did not answer within {STARTUP_TIMEOUT_SECONDS}s:\n{_tail(api)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(api: ApiProcess) -> str:
    return api.log_text()[-_LOG_TAIL_CHARS:]
