"""The benchmark's input: a deterministic, realistic stream of exception events for 20 projects.

A catalog of issues (each a fixed chain of 1-3 exceptions of 5-30 frames, drawn from per-project
code locations) is built from the seed; events pick issues with a Zipf-like popularity. Pure: it
never talks to Kafka or a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

PROJECT_COUNT = 20
ISSUE_COUNT = 5_000
# Rank r of the catalog is picked with weight 1 / r**s: a few issues carry most of the traffic.
ZIPF_EXPONENT = 1.1
EXCEPTIONS_PER_EVENT = (1, 3)
FRAMES_PER_EXCEPTION = (5, 30)
LOCATIONS_PER_PROJECT = 400
RELEASES_PER_PROJECT = 3
# Events are generated this many at a time: one vectorised draw per chunk, bounded memory.
CHUNK_EVENTS = 5_000

# The rare exception type that the bench's suppression rules sample (see bench.database).
RARE_TYPE = "ChunkLoadError"

# (type, value with a {} filled per event, relative frequency) per platform.
PYTHON_EXCEPTIONS = (
    ("ValueError", "invalid literal for int() with base 10: '{}'", 10),
    ("KeyError", "'order_{}'", 10),
    ("TypeError", "unsupported operand type(s) for +: 'int' and 'NoneType' (item {})", 8),
    ("AttributeError", "'NoneType' object has no attribute 'customer_{}'", 8),
    ("ZeroDivisionError", "division by zero in batch {}", 3),
    ("IndexError", "list index out of range: {}", 5),
    ("ConnectionResetError", "[Errno 104] Connection reset by peer (attempt {})", 4),
    ("TimeoutError", "timed out after {} ms", 5),
    ("IntegrityError", 'duplicate key value violates unique constraint "orders_pkey" ({})', 3),
    ("JSONDecodeError", "Expecting value: line 1 column {} (char 0)", 4),
)
JAVASCRIPT_EXCEPTIONS = (
    ("TypeError", "Cannot read properties of undefined (reading 'item{}')", 12),
    ("ReferenceError", "handler{} is not defined", 6),
    ("SyntaxError", "Unexpected token '<' at position {}", 4),
    ("RangeError", "Maximum call stack size exceeded ({})", 2),
    ("Error", "Request failed with status code {}", 10),
    ("UnhandledRejection", "Non-Error promise rejection captured with value: {}", 4),
    (RARE_TYPE, "Loading chunk {} failed.", 1),
)
PYTHON_PACKAGES = ("api", "billing", "models", "services", "tasks", "utils", "auth", "search")
JAVASCRIPT_FOLDERS = ("components", "pages", "hooks", "lib", "store", "api")
VERBS = (
    "load",
    "save",
    "render",
    "parse",
    "validate",
    "charge",
    "sync",
    "fetch",
    "handle",
    "build",
)
NOUNS = ("order", "invoice", "customer", "session", "cart", "report", "token", "payload", "user")
PYTHON_LIBRARY_FRAMES = (
    ("django/core/handlers/base.py", "django.core.handlers.base", "_get_response"),
    ("django/views/generic/base.py", "django.views.generic.base", "dispatch"),
    ("celery/app/trace.py", "celery.app.trace", "trace_task"),
    ("sqlalchemy/engine/base.py", "sqlalchemy.engine.base", "_execute_context"),
    ("requests/adapters.py", "requests.adapters", "send"),
)
JAVASCRIPT_LIBRARY_FRAMES = (
    ("node_modules/react-dom/cjs/react-dom.production.min.js", "commitRoot"),
    ("node_modules/react-dom/cjs/react-dom.production.min.js", "performSyncWorkOnRoot"),
    ("node_modules/axios/lib/core/settle.js", "settle"),
    ("node_modules/scheduler/cjs/scheduler.production.min.js", "workLoop"),
)


@dataclass(frozen=True, slots=True)
class ExceptionTemplate:
    type: str
    value_pattern: str
    module: str
    handled: bool
    mechanism: str
    # The frames never change between events of one issue, so they are encoded once.
    stacktrace: msgspec.Raw
    frame_count: int


@dataclass(frozen=True, slots=True)
class IssueTemplate:
    project_id: int
    platform: str
    exceptions: tuple[ExceptionTemplate, ...]


@dataclass(frozen=True, slots=True)
class GeneratedEvent:
    key: bytes
    value: bytes
    issue_index: int
    project_id: int


class StreamGenerator:
    """The catalog of ``issue_count`` issues of ``project_ids``, and the events drawn from it.

    Everything follows from ``seed``; successive ``events()`` calls continue one random stream,
    so a run that loads, then measures a steady pass, then a live background, never repeats a uuid.
    """

    def __init__(
        self, seed: int, project_ids: Sequence[int], issue_count: int = ISSUE_COUNT
    ) -> None:
        if not project_ids:
            raise ValueError("a stream needs at least one project")
        catalog_seed, events_seed = np.random.SeedSequence(seed).spawn(2)
        self.project_ids = tuple(project_ids)
        # Alternate platforms, so half the projects send Python stacks and half JavaScript ones.
        self.javascript_projects = self.project_ids[1::2]
        self.catalog = _build_catalog(
            np.random.default_rng(catalog_seed), self.project_ids, issue_count
        )
        ranks = np.arange(1, issue_count + 1, dtype=np.float64)
        weights = ranks**-ZIPF_EXPONENT
        self.popularity = weights / weights.sum()
        self._rng = np.random.default_rng(events_seed)
        self._releases = {
            project_id: [f"release-{project_id}-{n}" for n in range(RELEASES_PER_PROJECT)]
            for project_id in self.project_ids
        }
        self._encoder = msgspec.json.Encoder()

    def events(
        self,
        count: int,
        *,
        issue_pool: Sequence[int] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Iterator[GeneratedEvent]:
        """``count`` events, lazily; from ``issue_pool`` only (catalog indices) when given, with
        the pool's Zipf weights renormalised. Timestamps are "now" of ``clock`` (default: UTC)."""
        pool = np.arange(len(self.catalog)) if issue_pool is None else np.asarray(issue_pool)
        if len(pool) == 0:
            raise ValueError("the issue pool is empty")
        weights = self.popularity[pool] / self.popularity[pool].sum()
        now = clock or _utc_now
        remaining = count
        while remaining > 0:
            size = min(remaining, CHUNK_EVENTS)
            remaining -= size
            picks = self._rng.choice(pool, size=size, p=weights)
            uuid_bytes = self._rng.bytes(16 * size)
            fillers = self._rng.integers(1, 10_000, size=(size, EXCEPTIONS_PER_EVENT[1]))
            users = self._rng.integers(0, 50_000, size=size)
            releases = self._rng.integers(0, RELEASES_PER_PROJECT, size=size)
            timestamp = now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            for n in range(size):
                issue_index = int(picks[n])
                issue = self.catalog[issue_index]
                document = self._document(
                    issue,
                    event_uuid=str(uuid.UUID(bytes=uuid_bytes[16 * n : 16 * n + 16], version=4)),
                    timestamp=timestamp,
                    fillers=fillers[n],
                    user=int(users[n]),
                    release=self._releases[issue.project_id][int(releases[n])],
                )
                yield GeneratedEvent(
                    key=str(issue.project_id).encode(),
                    value=self._encoder.encode(document),
                    issue_index=issue_index,
                    project_id=issue.project_id,
                )

    def _document(
        self,
        issue: IssueTemplate,
        *,
        event_uuid: str,
        timestamp: str,
        fillers: np.ndarray,
        user: int,
        release: str,
    ) -> dict[str, Any]:
        exception_list = [
            {
                "type": exception.type,
                "value": exception.value_pattern.format(int(fillers[position])),
                "mechanism": {
                    "handled": exception.handled,
                    "type": exception.mechanism,
                    "synthetic": False,
                },
                "module": exception.module,
                "stacktrace": exception.stacktrace,
            }
            for position, exception in enumerate(issue.exceptions)
        ]
        return {
            "uuid": event_uuid,
            "project_id": issue.project_id,
            "timestamp": timestamp,
            "event": "$exception",
            "distinct_id": f"user-{user}",
            "properties": {
                "$exception_list": exception_list,
                "$release": release,
                "$lib": "posthog-python" if issue.platform == "python" else "web",
                "$environment": "production",
            },
        }


def small_event(project_id: int, fingerprint: str, event_uuid: str, timestamp: str) -> bytes:
    """A minimal valid event grouped by a manual fingerprint (for bursts and memory growth)."""
    return msgspec.json.encode(
        {
            "uuid": event_uuid,
            "project_id": project_id,
            "timestamp": timestamp,
            "event": "$exception",
            "distinct_id": "bench",
            "properties": {
                "$exception_list": [
                    {
                        "type": "BenchError",
                        "value": fingerprint,
                        "stacktrace": {
                            "type": "resolved",
                            "frames": [
                                {
                                    "platform": "python",
                                    "filename": "bench/app.py",
                                    "function": "raise_for_benchmark",
                                    "lineno": 1,
                                    "in_app": True,
                                    "resolved": True,
                                }
                            ],
                        },
                    }
                ],
                "$exception_fingerprint": fingerprint,
            },
        }
    )


def utc_timestamp() -> str:
    return _utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _build_catalog(
    rng: np.random.Generator, project_ids: Sequence[int], issue_count: int
) -> list[IssueTemplate]:
    platforms = {
        project_id: "javascript" if position % 2 else "python"
        for position, project_id in enumerate(project_ids)
    }
    locations = {
        project_id: _code_locations(rng, python=platform == "python")
        for project_id, platform in platforms.items()
    }
    owners = rng.integers(0, len(project_ids), size=issue_count)
    catalog = []
    for owner in owners:
        project_id = project_ids[int(owner)]
        platform = platforms[project_id]
        kinds = PYTHON_EXCEPTIONS if platform == "python" else JAVASCRIPT_EXCEPTIONS
        frequencies = np.array([weight for _, _, weight in kinds], dtype=np.float64)
        chain_length = int(rng.integers(EXCEPTIONS_PER_EVENT[0], EXCEPTIONS_PER_EVENT[1] + 1))
        exceptions = []
        for _ in range(chain_length):
            kind = kinds[int(rng.choice(len(kinds), p=frequencies / frequencies.sum()))]
            exceptions.append(_exception(rng, kind, platform, locations[project_id]))
        catalog.append(IssueTemplate(project_id, platform, tuple(exceptions)))
    return catalog


def _exception(
    rng: np.random.Generator,
    kind: tuple[str, str, int],
    platform: str,
    locations: list[dict[str, Any]],
) -> ExceptionTemplate:
    frame_count = int(rng.integers(FRAMES_PER_EXCEPTION[0], FRAMES_PER_EXCEPTION[1] + 1))
    chosen = rng.choice(len(locations), size=frame_count, replace=False)
    frames = [locations[int(index)] for index in chosen]
    innermost = frames[-1]
    module = innermost.get("module") or innermost["filename"].rsplit(".", 1)[0].replace("/", ".")
    stacktrace = {"type": "resolved", "frames": frames}
    return ExceptionTemplate(
        type=kind[0],
        value_pattern=kind[1],
        module=module,
        handled=bool(rng.random() < 0.3),
        mechanism="generic" if platform == "python" else "onunhandledrejection",
        stacktrace=msgspec.Raw(msgspec.json.encode(stacktrace)),
        frame_count=frame_count,
    )


def _code_locations(rng: np.random.Generator, *, python: bool) -> list[dict[str, Any]]:
    """The frames a project's stack traces are drawn from: mostly its own code, some libraries."""
    locations = []
    for index in range(LOCATIONS_PER_PROJECT):
        verb, noun = VERBS[index % len(VERBS)], NOUNS[(index // len(VERBS)) % len(NOUNS)]
        lineno = int(rng.integers(1, 900))
        if python:
            if index % 8 == 7:
                filename, module, function = PYTHON_LIBRARY_FRAMES[
                    (index // 8) % len(PYTHON_LIBRARY_FRAMES)
                ]
                in_app = False
            else:
                package = PYTHON_PACKAGES[index % len(PYTHON_PACKAGES)]
                filename = f"app/{package}/{noun}s.py"
                module = f"app.{package}.{noun}s"
                function = f"{verb}_{noun}_{index}"
                in_app = True
            locations.append(
                {
                    "platform": "python",
                    "filename": filename,
                    "module": module,
                    "function": function,
                    "lineno": lineno,
                    "in_app": in_app,
                    "resolved": True,
                }
            )
        else:
            if index % 8 == 7:
                filename, function = JAVASCRIPT_LIBRARY_FRAMES[
                    (index // 8) % len(JAVASCRIPT_LIBRARY_FRAMES)
                ]
                in_app = False
            else:
                folder = JAVASCRIPT_FOLDERS[index % len(JAVASCRIPT_FOLDERS)]
                filename = f"src/{folder}/{noun.capitalize()}{verb.capitalize()}.tsx"
                function = f"{verb}{noun.capitalize()}{index}"
                in_app = True
            locations.append(
                {
                    "platform": "web:javascript",
                    "filename": filename,
                    "function": function,
                    "lineno": lineno,
                    "colno": int(rng.integers(1, 120)),
                    "in_app": in_app,
                    "resolved": True,
                }
            )
    return locations
