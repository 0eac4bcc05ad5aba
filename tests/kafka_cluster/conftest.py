"""Fixtures of the Kafka cluster tests: the local three-node cluster of ``scripts/services.sh up
kafka-cluster``, healthy before and after every test (a test that killed a node gets it back and
its partitions in sync again), and real worker processes on it with the single Redis.

Without ``TEST_KAFKA_CLUSTER_BOOTSTRAP`` these tests skip, saying how to start the cluster
(``scripts/test.sh`` always does); with it set, a cluster that does not answer fails them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import pytest

from tests.reliability.conftest import WORKER_TEST_SETTINGS, LaunchWorker, Worker, launch_worker
from tests.support.kafka_cluster import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, KafkaCluster
from tests.worker.conftest import postgres_database_url, redis_client, sqlite_url
from tests.worker.processes import Topics

# The fixtures of the worker and reliability tests these tests use.
__all__ = ["launch_worker", "postgres_database_url", "redis_client", "sqlite_url"]

# Two input partitions for each broker to lead, and for each of three workers to own.
PARTITIONS = 6


def worker_settings(**extra: str) -> dict[str, str]:
    """A worker's environment on the cluster: topics it creates are replicated as the cluster's
    own defaults are, and the test-sized settings of the reliability tests."""
    return {
        **WORKER_TEST_SETTINGS,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "KAFKA_TOPIC_REPLICATION_FACTOR": str(REPLICATION_FACTOR),
        "KAFKA_TOPIC_MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS),
        **extra,
    }


@pytest.fixture(scope="session")
def cluster_bootstrap() -> str:
    bootstrap = os.environ.get("TEST_KAFKA_CLUSTER_BOOTSTRAP")
    if not bootstrap:
        pytest.skip(
            "TEST_KAFKA_CLUSTER_BOOTSTRAP is not set: start the local Kafka cluster with "
            "`bash scripts/services.sh up kafka-cluster` and `source .services/env`"
        )
    return bootstrap


@pytest.fixture
async def kafka_cluster(cluster_bootstrap: str) -> AsyncIterator[KafkaCluster]:
    cluster = KafkaCluster(cluster_bootstrap)
    await cluster.ensure_healthy()
    yield cluster
    await cluster.ensure_healthy()


@pytest.fixture
async def topics(kafka_cluster: KafkaCluster) -> AsyncIterator[Topics]:
    """The test's own topic names on the cluster; the topics are deleted after the test."""
    names = Topics.unique()
    yield names
    await kafka_cluster.delete_topics(names)


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(
    topics: Topics, launch_worker: LaunchWorker, cluster_bootstrap: str
) -> StartWorker:
    """Start a worker on the cluster and the test's topics: ``start(database_url, group,
    **settings)``. (``topics`` is set up before ``launch_worker``, so the workers are stopped
    before their topics are deleted.)"""

    def start(database_url: str, group: str, **settings: str) -> Worker:
        return launch_worker(
            database_url, cluster_bootstrap, topics, group, settings_env=worker_settings(**settings)
        )

    return start
