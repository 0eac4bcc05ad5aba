"""What the figures were measured on: the machine (cores, memory, CPU model) and the versions of
Python, Kafka, Redis and the packages on the hot path. Read-only: /proc, package metadata, INFO.
"""

from __future__ import annotations

import os
import pathlib
import platform
import re
from importlib import metadata

import redis.asyncio

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = (
    "spikewatch",
    "faust-streaming",
    "aiokafka",
    "redis",
    "hiredis",
    "msgspec",
    "SQLAlchemy",
    "aiosqlite",
    "numpy",
    "prometheus-client",
)


def describe_machine() -> dict[str, str]:
    return {
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": f"{_meminfo_kilobytes('MemTotal') / 1024 / 1024:.1f} GiB",
        "cpu": _cpu_model(),
        "kernel": platform.release(),
    }


async def describe_versions(redis_url: str) -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "kafka": kafka_version(REPO_ROOT / ".cache"),
        "redis server": await _redis_version(redis_url),
    }
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def kafka_version(cache: pathlib.Path) -> str:
    """The broker version of the local services, from the kafka-clients jar they run."""
    for jar in sorted(cache.glob("kafka-*/libs/kafka-clients-*.jar")):
        match = re.fullmatch(r"kafka-clients-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    return "unknown (no kafka-clients jar under .cache)"


async def _redis_version(redis_url: str) -> str:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        return str((await client.info("server"))["redis_version"])
    finally:
        await client.aclose()


def _meminfo_kilobytes(field: str) -> int:
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"/proc/meminfo has no {field}")


def _cpu_model() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
