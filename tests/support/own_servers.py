"""Servers a test owns and may stop, crash or freeze to play an outage: a Kafka broker, a PostgreSQL
cluster and a redis-server, each on free loopback ports in a temporary directory of its own.

The shared services (``scripts/services.sh``) serve everyone's tests; nothing here ever signals a
process it did not start itself. The fixtures that start and remove these live in
``tests/support/own_server_fixtures.py``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from loadtest.api_server import free_loopback_port

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
KAFKA_FILES = REPO_ROOT / "scripts" / "kafka"
PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT_SECONDS = 90
# Room for a 10 MB hostile message and its produce request (the broker default is ~1 MB).
KAFKA_MESSAGE_MAX_BYTES = 12_000_000


def no_retry_client(port: int, **kwargs: Any) -> Redis:
    """A client that gives up at once: what a fail-open stage is configured with."""
    return Redis(port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, **kwargs)


def _stop_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class _OneProcessServer:
    """A server that is one process of the test's own (``_process`` once started)."""

    _process: subprocess.Popen[bytes] | None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing ever answers, as with a hung host."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


def kafka_libs() -> pathlib.Path:
    """The jars ``scripts/services.sh`` downloaded (a directory holding ``.complete``)."""
    for libs in sorted((REPO_ROOT / ".cache").glob("kafka-*/libs"), reverse=True):
        if (libs / ".complete").exists():
            return libs
    raise AssertionError("no Kafka jars under .cache/; run `bash scripts/services.sh up` first")


class OwnKafkaBroker(_OneProcessServer):
    """A single-node KRaft broker configured like the shared one (``scripts/kafka``), except for
    its ports, its data directory and a message size limit raised to 12 MB."""

    def __init__(self) -> None:
        self.port = free_loopback_port()
        self.controller_port = free_loopback_port()
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="spikewatch-kafka-"))
        self.log_path = self.root / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._properties = self.root / "server.properties"
        template = (KAFKA_FILES / "server.properties").read_text()
        self._properties.write_text(
            template.replace("@KAFKA_PORT@", str(self.port))
            .replace("@KAFKA_CONTROLLER_PORT@", str(self.controller_port))
            .replace("@KAFKA_DATA_DIR@", str(self.root / "data"))
            + f"message.max.bytes={KAFKA_MESSAGE_MAX_BYTES}\n"
            + f"replica.fetch.max.bytes={KAFKA_MESSAGE_MAX_BYTES}\n"
        )
        # What `StorageTool random-uuid` prints, without a JVM start to print it.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            [
                *self._java(),
                *("kafka.tools.StorageTool", "format", "-t", cluster_id),
                *("-c", str(self._properties)),
            ],
            check=True,
            capture_output=True,
            timeout=READY_TIMEOUT_SECONDS,
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def _java(*options: str) -> list[str]:
        return ["java", *options, "-cp", f"{kafka_libs()}/*"]

    def start(self) -> None:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                *self._java(
                    "-Xms256m",
                    "-Xmx256m",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={KAFKA_FILES / 'log4j2.properties'}",
                ),
                "kafka.Kafka",
                str(self._properties),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C aimed at pytest must not reach the broker half-way.
            start_new_session=True,
        )
        log.close()

    async def wait_ready(self) -> None:
        """Until the broker answers a metadata request (the port alone opens earlier)."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if self._process is None or self._process.poll() is not None:
                raise AssertionError(f"own Kafka broker exited:\n{self.log_tail()}")
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except (KafkaError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"own Kafka never ready:\n{self.log_tail()}") from None
                await asyncio.sleep(0.5)
            finally:
                await admin.close()

    def crash(self) -> None:
        """``kill -9``: no controlled shutdown, logs recovered on the next start."""
        if self._process is not None:
            _stop_process(self._process, signal.SIGKILL)

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self.thaw()
            _stop_process(self._process, signal.SIGTERM)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _as_postgres(*command: str) -> None:
    # cwd=/: the postgres user may not be allowed into the caller's working directory.
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        check=True,
        capture_output=True,
        cwd="/",
        timeout=READY_TIMEOUT_SECONDS,
    )


class OwnPostgres:
    """A throwaway cluster run by pg_ctl as the ``postgres`` user (it refuses to run as root),
    trust authentication on 127.0.0.1 only, fsync off: it only ever holds test data."""

    USER = "spikewatch"

    def __init__(self) -> None:
        self.port = free_loopback_port()
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="spikewatch-pg-"))
        self.data = self.root / "data"
        shutil.chown(self.root, "postgres", "postgres")
        _as_postgres(
            str(PG_BIN / "initdb"),
            *("-D", str(self.data), "-U", self.USER),
            *("--auth=trust", "--encoding=UTF8", "--no-sync"),
        )

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://{self.USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.root / "postgres.log")),
            *("-o", options, "-w", "start"),
        )

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut off, as when a database server goes away."""
        self._pg_ctl_stop("fast")

    def crash(self) -> None:
        """An immediate shutdown: every session is cut off without a goodbye, and the next start
        recovers from the WAL, as after a crash."""
        self._pg_ctl_stop("immediate")

    def freeze(self) -> None:
        """Stop the server and its sessions dead (SIGSTOP), like a host that stopped answering:
        connections stay open and nothing ever replies."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.thaw()
            self.crash()
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl_stop(self, mode: str) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def _pids(self) -> list[int]:
        """The postmaster of this cluster and its children, never another server's processes."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = pathlib.Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text()
        return [postmaster, *map(int, children.split())]


class OwnRedis(_OneProcessServer):
    """A redis-server. By default nothing is persisted, so a restart comes back empty (a Redis
    that lost its memory); ``persistent=True`` writes every command to an append-only file
    before answering, so even a ``kill -9`` loses nothing (a production Redis with AOF)."""

    def __init__(self, *, persistent: bool = False) -> None:
        self.port = free_loopback_port()
        self.persistent = persistent
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="spikewatch-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it listens."""
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed on PATH"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--dir", str(self.root)]
        if self.persistent:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"redis-server never listened on {self.port}") from None
                time.sleep(0.02)

    async def wait_ready(self) -> None:
        """Until it answers PING (with AOF, it may listen before it has loaded its file)."""
        client = no_retry_client(self.port)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        try:
            while True:
                try:
                    await client.ping()
                    return
                except RedisError:
                    if time.monotonic() > deadline:
                        raise AssertionError("own redis-server never answered") from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def crash(self) -> None:
        """``kill -9``."""
        if self._process is not None:
            _stop_process(self._process, signal.SIGKILL)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self.thaw()
            _stop_process(self._process, signal.SIGTERM)
            self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
