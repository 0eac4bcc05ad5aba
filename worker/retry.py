"""Retry infrastructure failures (Redis, the database, Kafka) with backoff until they succeed.

An exception escaping the Faust agent restarts the worker (and with a plain ``take()`` would ack
the batch unprocessed), so an outage waits here instead. Anything that is not an outage (a bug, a
constraint an event violates) is re-raised at once, so the pipeline can isolate its event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis.exceptions
import sqlalchemy.exc
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faust.exceptions import ProducerSendError

from worker import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATE classes caused by the values written: data exception (a NUL byte, an integer out of
# range), integrity constraint violation, program limit exceeded (an index row too large).
EVENT_DATA_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


@dataclass(frozen=True, slots=True)
class Backoff:
    first_delay_seconds: float = 0.1
    max_delay_seconds: float = 5.0

    def delay_seconds(self, attempt: int) -> float:
        """Exponential, jittered so that workers that failed together do not retry in lockstep."""
        ceiling = min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def is_infrastructure_failure(exc: BaseException) -> bool:
    """True for failures that waiting cures (a service down, locked, failing over or not migrated
    yet); False for what an event's own data caused, and for bugs."""
    if isinstance(exc, ProducerSendError):
        return exc.__cause__ is not None and is_infrastructure_failure(exc.__cause__)
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        # Only these are about the rows being written; anything else the database says is about
        # the database, and retrying it never loses an event. The asyncpg dialect raises a bare
        # DBAPIError for most server errors, so its SQLSTATE class decides: retrying a NUL byte
        # or an oversized index row would wedge the partition behind one hostile event.
        if isinstance(exc, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.DataError):
            return False
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        return sqlstate[:2] not in EVENT_DATA_SQLSTATE_CLASSES
    return isinstance(
        exc,
        OSError  # includes ConnectionError and TimeoutError
        | sqlalchemy.exc.TimeoutError
        | redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError
        | redis.exceptions.BusyLoadingError
        | KafkaConnectionError
        | KafkaTimeoutError,
    ) or bool(getattr(exc, "retriable", False))


async def retry_infrastructure(
    operation: Callable[[], Awaitable[T]], *, dependency: str, backoff: Backoff = Backoff()
) -> T:
    """Run ``operation`` until it succeeds, sleeping between attempts that hit an outage."""
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_infrastructure_failure(exc):
                raise
            attempt += 1
            delay = backoff.delay_seconds(attempt)
            metrics.INFRASTRUCTURE_RETRIES.labels(dependency=dependency).inc()
            log.warning(
                "%s unavailable (attempt %d: %r); retrying in %.2fs",
                dependency,
                attempt,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
