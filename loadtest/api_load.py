"""The API load generator: concurrent clients (asyncio + httpx, in this process) run a mix of
reads and writes for a fixed time against the API served by uvicorn in a child process, on a
fresh PostgreSQL database, and report requests/s, p50/p99 latency and every unexpected answer.

Bounded (clients, seconds and requests are capped) and loopback only. It measures and never
judges speed; the test that runs a short version checks zero errors and exact bookkeeping.

    python -m loadtest.api_load --clients 200 --duration 60 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import math
import os
import pathlib
import random
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import admin
from loadtest.api_server import running_api
from schemas.db import make_engine, make_sessionmaker
from schemas.settings import Settings
from schemas.tables import Issue, SpikeEvent, StackFrame
from tests.support.databases import fresh_database

MAX_CLIENTS = 1000
MAX_DURATION_SECONDS = 600.0
DEFAULT_MAX_REQUESTS = 1_000_000
# Neither the worker's Redis database (0) nor the API tests' (7): config bumps land apart.
LOAD_REDIS_DB = 8
FRAMES_PER_PROJECT = 20
SPIKES_PER_PROJECT = 10
MAX_ERROR_SAMPLES = 20
REQUEST_TIMEOUT_SECONDS = 60.0

# Relative weights of what a client does next: about a third of the requests write.
OPERATION_WEIGHTS = {
    "list_releases": 14,
    "retrieve_release": 10,
    "create_release": 8,
    "update_release": 5,
    "delete_release": 3,
    "list_suppression_rules": 8,
    "retrieve_suppression_rule": 5,
    "create_suppression_rule": 4,
    "update_suppression_rule": 3,
    "delete_suppression_rule": 2,
    "retrieve_settings": 8,
    "update_settings": 3,
    "retrieve_spike_detection_config": 8,
    "update_spike_detection_config": 3,
    "list_spike_events": 8,
    "list_stack_frames": 5,
    "batch_get_stack_frames": 3,
}


@dataclass(frozen=True)
class ProjectKeys:
    project_id: int
    write: dict[str, str]
    read: dict[str, str]

    def url(self, path: str) -> str:
        return f"/api/projects/{self.project_id}/error_tracking/{path}"


@dataclass
class LoadReport:
    clients: int
    seconds: float = 0.0
    latencies_seconds: list[float] = field(default_factory=list)
    by_operation: Counter[str] = field(default_factory=Counter)
    error_count: int = 0
    error_samples: list[str] = field(default_factory=list)
    # Releases and rules each project holds by the generator's own account of its 2xx answers.
    releases: Counter[int] = field(default_factory=Counter)
    rules: Counter[int] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies_seconds)

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies_seconds:
            return 0.0
        ordered = sorted(self.latencies_seconds)
        return 1000 * ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]

    def record(self, operation: str, seconds: float, error: str | None) -> None:
        self.latencies_seconds.append(seconds)
        self.by_operation[operation] += 1
        if error is not None:
            self.error_count += 1
            if len(self.error_samples) < MAX_ERROR_SAMPLES:
                self.error_samples.append(error)

    def summary(self) -> str:
        lines = [
            f"clients {self.clients}, {self.seconds:.1f} s",
            f"requests {self.requests} ({self.requests_per_second:.1f}/s), "
            f"errors {self.error_count}",
            f"latency p50 {self.percentile_ms(0.50):.1f} ms, p99 {self.percentile_ms(0.99):.1f} "
            f"ms, max {self.percentile_ms(1.0):.1f} ms",
            "by operation: "
            + ", ".join(f"{name} {count}" for name, count in sorted(self.by_operation.items())),
            *self.error_samples,
        ]
        return "\n".join(lines)


class _Client:
    """One simulated operator script: it touches only its project, and updates or deletes only
    the releases and rules it created itself, so every answer it gets is predictable."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        project: ProjectKeys,
        report: LoadReport,
        rng: random.Random,
    ) -> None:
        self.http = http
        self.project = project
        self.report = report
        self.rng = rng
        self.releases: list[str] = []
        self.rules: list[str] = []

    async def run(self, deadline: float, max_requests: int) -> None:
        names = list(OPERATION_WEIGHTS)
        weights = list(OPERATION_WEIGHTS.values())
        while time.monotonic() < deadline and self.report.requests < max_requests:
            await getattr(self, self.rng.choices(names, weights)[0])()

    async def _call(
        self, operation: str, method: str, path: str, expected: int, body: Any = None
    ) -> Any:
        """The answer's JSON (or {} for a 204) when it is the expected one; None otherwise."""
        headers = self.project.read if method == "GET" else self.project.write
        started = time.perf_counter()
        try:
            response = await self.http.request(
                method, self.project.url(path), json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            self.report.record(operation, time.perf_counter() - started, f"{operation}: {exc!r}")
            return None
        seconds = time.perf_counter() - started
        if response.status_code != expected:
            error = f"{operation}: {method} {path} -> {response.status_code} {response.text:.200}"
            self.report.record(operation, seconds, error)
            return None
        self.report.record(operation, seconds, None)
        return response.json() if response.content else {}

    async def list_releases(self) -> None:
        await self._call("list_releases", "GET", "releases/?limit=20", 200)

    async def retrieve_release(self) -> None:
        if not self.releases:
            return await self.create_release()
        await self._call("retrieve_release", "GET", f"releases/{self._pick(self.releases)}/", 200)

    async def create_release(self) -> None:
        body = {"version": f"1.{self.rng.randrange(1000)}.0", "project": "web"}
        release = await self._call("create_release", "POST", "releases/", 201, body)
        if release is not None:
            self.releases.append(release["id"])
            self.report.releases[self.project.project_id] += 1

    async def update_release(self) -> None:
        if not self.releases:
            return await self.create_release()
        body = {"metadata": {"deployed_at": datetime.now(UTC).isoformat()}}
        path = f"releases/{self._pick(self.releases)}/"
        await self._call("update_release", "PATCH", path, 204, body)

    async def delete_release(self) -> None:
        if not self.releases:
            return await self.create_release()
        release_id = self.releases.pop(self.rng.randrange(len(self.releases)))
        path = f"releases/{release_id}/"
        if await self._call("delete_release", "DELETE", path, 204) is not None:
            self.report.releases[self.project.project_id] -= 1

    async def list_suppression_rules(self) -> None:
        await self._call("list_suppression_rules", "GET", "suppression_rules/?limit=20", 200)

    async def retrieve_suppression_rule(self) -> None:
        if not self.rules:
            return await self.create_suppression_rule()
        path = f"suppression_rules/{self._pick(self.rules)}/"
        await self._call("retrieve_suppression_rule", "GET", path, 200)

    async def create_suppression_rule(self) -> None:
        body = {
            "filters": {
                "type": "OR",
                "values": [
                    {"key": "$exception_types", "value": [f"Error{self.rng.randrange(100)}"]},
                    {"key": "$exception_values", "operator": "regex", "value": "^timeout .*s$"},
                ],
            },
            "sampling_rate": self.rng.choice([0.1, 0.5, 1.0]),
        }
        rule = await self._call("create_suppression_rule", "POST", "suppression_rules/", 201, body)
        if rule is not None:
            self.rules.append(rule["id"])
            self.report.rules[self.project.project_id] += 1

    async def update_suppression_rule(self) -> None:
        if not self.rules:
            return await self.create_suppression_rule()
        path = f"suppression_rules/{self._pick(self.rules)}/"
        body = {"sampling_rate": self.rng.choice([0.25, 0.75])}
        await self._call("update_suppression_rule", "PATCH", path, 204, body)

    async def delete_suppression_rule(self) -> None:
        if not self.rules:
            return await self.create_suppression_rule()
        rule_id = self.rules.pop(self.rng.randrange(len(self.rules)))
        path = f"suppression_rules/{rule_id}/"
        if await self._call("delete_suppression_rule", "DELETE", path, 204) is not None:
            self.report.rules[self.project.project_id] -= 1

    async def retrieve_settings(self) -> None:
        await self._call("retrieve_settings", "GET", "settings/retrieve_settings/", 200)

    async def update_settings(self) -> None:
        body = {"project_rate_limit_value": self.rng.randrange(100, 10_000)}
        await self._call("update_settings", "PATCH", "settings/update_settings/", 200, body)

    async def retrieve_spike_detection_config(self) -> None:
        await self._call("retrieve_spike_detection_config", "GET", "spike_detection_config/", 200)

    async def update_spike_detection_config(self) -> None:
        body = {"threshold": self.rng.randrange(100, 1000)}
        path = "spike_detection_config/update_config/"
        await self._call("update_spike_detection_config", "PATCH", path, 200, body)

    async def list_spike_events(self) -> None:
        await self._call("list_spike_events", "GET", "spike_events/?limit=10", 200)

    async def list_stack_frames(self) -> None:
        await self._call("list_stack_frames", "GET", "stack_frames/?limit=10", 200)

    async def batch_get_stack_frames(self) -> None:
        raw_ids = [f"frame-{index}" for index in self.rng.sample(range(FRAMES_PER_PROJECT), 5)]
        body = {"raw_ids": raw_ids}
        await self._call("batch_get_stack_frames", "POST", "stack_frames/batch_get/", 200, body)

    def _pick(self, ids: list[str]) -> str:
        return ids[self.rng.randrange(len(ids))]


def require_loopback(base_url: str) -> None:
    host = urlparse(base_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the load generator only targets loopback addresses, not {host!r}")


async def run_load(
    base_url: str,
    projects: list[ProjectKeys],
    *,
    clients: int,
    duration_seconds: float,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    seed: int = 0,
) -> LoadReport:
    """``clients`` clients spread over ``projects``, each looping until the time or the shared
    request budget is spent."""
    require_loopback(base_url)
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be between 1 and {MAX_CLIENTS}")
    if not 0 < duration_seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f"duration must be above 0 and at most {MAX_DURATION_SECONDS} s")
    report = LoadReport(clients=clients)
    # One connection per client, as real clients have: a single shared pool of hundreds of
    # connections spends more CPU in its own bookkeeping than the requests cost. The TLS context
    # is shared only because building one per client is slow (nothing here uses TLS).
    tls = ssl.create_default_context()
    async with contextlib.AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    limits=httpx.Limits(max_connections=1),
                    timeout=REQUEST_TIMEOUT_SECONDS,
                    verify=tls,
                )
            )
            for _ in range(clients)
        ]
        started = time.monotonic()
        deadline = started + duration_seconds
        await asyncio.gather(
            *(
                _Client(
                    http, projects[index % len(projects)], report, random.Random(seed + index)
                ).run(deadline, max_requests)
                for index, http in enumerate(connections)
            )
        )
        report.seconds = time.monotonic() - started
    return report


async def prepare_projects(database_url: str, count: int) -> list[ProjectKeys]:
    """``count`` projects, each with a write and a read key, stack frames and spike events."""
    engine = make_engine(database_url)
    sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    projects = []
    try:
        for index in range(count):
            project = await admin.create_project(sessionmaker, f"load-{index}")
            _, write = await admin.create_api_key(
                sessionmaker, label="load write", scopes=["*"], project_ids=[project.id]
            )
            _, read = await admin.create_api_key(
                sessionmaker,
                label="load read",
                scopes=["error_tracking:read"],
                project_ids=[project.id],
            )
            await _seed_worker_rows(sessionmaker, project.id)
            projects.append(
                ProjectKeys(
                    project.id,
                    {"Authorization": f"Bearer {write}"},
                    {"Authorization": f"Bearer {read}"},
                )
            )
    finally:
        await engine.dispose()
    return projects


async def _seed_worker_rows(
    sessionmaker: async_sessionmaker[AsyncSession], project_id: int
) -> None:
    """What the worker would have written: stack frames and spike events to read back."""
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        issue = Issue(project_id=project_id, name="TypeError", description="x is undefined")
        session.add(issue)
        await session.flush()
        session.add_all(
            StackFrame(
                project_id=project_id,
                raw_id=f"frame-{index}",
                contents={"function": f"handler_{index}", "filename": "app/views.py"},
                resolved=True,
            )
            for index in range(FRAMES_PER_PROJECT)
        )
        session.add_all(
            SpikeEvent(
                id=uuid.uuid4(),
                project_id=project_id,
                issue_id=issue.id,
                detected_at=now - timedelta(minutes=5 * index),
                computed_baseline=12.5,
                current_bucket_value=600 + index,
                bucket_start=now - timedelta(minutes=5 * index),
                threshold=500,
                multiplier=10,
            )
            for index in range(SPIKES_PER_PROJECT)
        )
        await session.commit()


def _load_redis_url(redis_url: str) -> str:
    return urlunparse(urlparse(redis_url)._replace(path=f"/{LOAD_REDIS_DB}"))


async def _main(arguments: argparse.Namespace) -> LoadReport:
    with tempfile.TemporaryDirectory() as scratch:
        async with fresh_database(
            "postgresql", pathlib.Path(scratch), arguments.postgres_admin_url
        ) as database_url:
            projects = await prepare_projects(database_url, arguments.projects)
            with running_api(database_url, arguments.redis_url, workers=arguments.workers) as api:
                return await run_load(
                    api.base_url,
                    projects,
                    clients=arguments.clients,
                    duration_seconds=arguments.duration,
                    max_requests=arguments.max_requests,
                    seed=arguments.seed,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get("TEST_POSTGRES_URL"),
        help="a server where a fresh database may be created (default: $TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--redis-url", default=_load_redis_url(Settings().redis_url), help="Redis for the API"
    )
    arguments = parser.parse_args()
    if not arguments.postgres_admin_url:
        parser.error("give --postgres-admin-url or set TEST_POSTGRES_URL")
    report = asyncio.run(_main(arguments))
    print(f"workers {arguments.workers}, projects {arguments.projects}, PostgreSQL")
    print(report.summary())
    sys.exit(1 if report.error_count else 0)


if __name__ == "__main__":
    main()
