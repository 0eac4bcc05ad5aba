"""The local three-node Kafka cluster of ``scripts/services.sh up kafka-cluster`` as its tests use
it: a node's pid, a node killed (``kill -9``) and brought back by the script, and what the
cluster says of topics (leaders, replicas, in-sync replicas, configs) and of consumer groups.

A pid is only signalled while it runs in its node's state dir, the check the script itself makes,
so nothing but a node the script started is ever killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from tests.support.own_servers import REPO_ROOT
from tests.worker.processes import Topics

NODE_IDS = (1, 2, 3)
STATE_DIR = REPO_ROOT / ".services" / "kafka-cluster"
SERVICES_SCRIPT = REPO_ROOT / "scripts" / "services.sh"
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
# `up` waits up to 90 s for the brokers (scripts/services.sh), and a restarted node then catches
# up on every partition it follows.
RECOVERY_TIMEOUT_SECONDS = 120
# DescribeConfigs' source of a config set on the topic itself (DYNAMIC_TOPIC_CONFIG).
TOPIC_CONFIG_SOURCE = 1


@dataclass(frozen=True, slots=True)
class PartitionState:
    partition: int
    leader: int  # -1: none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


def node_pid(node: int) -> int | None:
    """The pid of a running node, as the script recorded it; None when the node is not running."""
    node_dir = STATE_DIR / str(node)
    try:
        pid = int((node_dir / "kafka.pid").read_text())
        if pathlib.Path(f"/proc/{pid}/cwd").resolve() == node_dir.resolve():
            return pid
    except (OSError, ValueError):
        pass
    return None


class KafkaCluster:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def kill(self, node: int) -> None:
        """``kill -9`` the node and wait until it is gone: no shutdown, no leadership handed on."""
        pid = node_pid(node)
        assert pid is not None, f"kafka-cluster node {node} is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while node_pid(node) is not None:
            assert time.monotonic() < deadline, f"node {node} (pid {pid}) outlived SIGKILL"
            time.sleep(0.05)

    async def start_missing_nodes(self) -> float:
        """``services.sh up kafka-cluster``: it starts the nodes not running and returns once
        every broker is registered and unfenced; the seconds it took."""
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(SERVICES_SCRIPT),
            "up",
            "kafka-cluster",
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output.decode(errors="replace")
        return time.monotonic() - started

    async def partitions(self, topics: Iterable[str]) -> dict[str, list[PartitionState]]:
        async with admin_client(self.bootstrap) as admin:
            described = await admin.describe_topics(list(topics))
        return {topic["topic"]: _states(topic) for topic in described}

    async def topic_overrides(self, topics: Iterable[str]) -> dict[str, dict[str, str]]:
        """The configs set on each topic itself (not inherited from the brokers' defaults)."""
        resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        async with admin_client(self.bootstrap) as admin:
            responses = await admin.describe_configs(resources)
        overrides: dict[str, dict[str, str]] = {}
        for response in responses:
            for error_code, _, _, topic, entries in response.resources:
                assert error_code == 0, (topic, error_code)
                # Entries are (name, value, read_only, source, ...) from DescribeConfigs v1 on,
                # the only versions a 4.x broker answers.
                overrides[topic] = {
                    entry[0]: entry[1] for entry in entries if entry[3] == TOPIC_CONFIG_SOURCE
                }
        return overrides

    async def coordinator(self, group: str) -> int:
        async with admin_client(self.bootstrap) as admin:
            return await admin.find_coordinator(group)

    async def create_topics(self, topics: Topics, partitions: int) -> None:
        """The worker's four topics as a deployment provisions them on this cluster: three
        replicas, two in sync; returns once every partition has a leader and all its replicas in
        sync."""
        config = {"min.insync.replicas": str(MIN_INSYNC_REPLICAS)}
        async with admin_client(self.bootstrap) as admin:
            await admin.create_topics(
                [
                    NewTopic(name, partitions, REPLICATION_FACTOR, topic_configs=config)
                    for name in topics.all()
                ]
            )
        await self.wait_until_in_sync(topics.all(), timeout_seconds=60)

    async def delete_topics(self, topics: Topics) -> None:
        async with admin_client(self.bootstrap) as admin:
            await admin.delete_topics(topics.all())

    async def wait_until_in_sync(
        self, topics: Iterable[str] | None = None, *, timeout_seconds: float
    ) -> None:
        """Until the topics exist and every partition of theirs (of every topic, the cluster's
        own included, when None) has a leader and every replica in sync: no node is behind."""
        names = None if topics is None else list(topics)
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                lagging = await self._lagging(names)
            except KafkaError as exc:
                lagging = {"no metadata": exc}
            if not lagging:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"partitions not fully in sync: {lagging}")
            await asyncio.sleep(0.5)

    async def _lagging(self, names: list[str] | None) -> dict[str, object]:
        async with admin_client(self.bootstrap) as admin:
            # Asked for by name, a missing topic would be created with the brokers' defaults
            # (auto.create.topics.enable): only ever describe topics that exist.
            missing = set(names or ()) - set(await admin.list_topics())
            if missing:
                return {"not created yet": sorted(missing)}
            described = await admin.describe_topics(names)
        return {
            f"{topic['topic']}-{state.partition}": state
            for topic in described
            for state in _states(topic)
            if state.leader < 0 or set(state.isr) != set(state.replicas)
        }

    async def ensure_healthy(self) -> None:
        """Every node running and every partition fully replicated, whatever a test did."""
        if any(node_pid(node) is None for node in NODE_IDS):
            await self.start_missing_nodes()
        await self.wait_until_in_sync(timeout_seconds=RECOVERY_TIMEOUT_SECONDS)


def _states(described_topic: dict) -> list[PartitionState]:  # type: ignore[type-arg]
    return sorted(
        (
            PartitionState(p["partition"], p["leader"], tuple(p["replicas"]), tuple(p["isr"]))
            for p in described_topic["partitions"]
        ),
        key=lambda state: state.partition,
    )
