"""Outages are retried with backoff until they pass; anything else is raised at once, so that
the pipeline can set its event aside."""

from __future__ import annotations

import pytest
import redis.exceptions
import sqlalchemy.exc
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from prometheus_client import REGISTRY

from worker.retry import Backoff, is_infrastructure_failure, retry_infrastructure

QUICK = Backoff(first_delay_seconds=0.001, max_delay_seconds=0.004)


def retries_of(dependency: str) -> float:
    sample = REGISTRY.get_sample_value(
        "spikewatch_infrastructure_retries_total", {"dependency": dependency}
    )
    return sample or 0.0


def wrapped(cause: BaseException) -> ProducerSendError:
    try:
        raise ProducerSendError("send failed") from cause
    except ProducerSendError as exc:
        return exc


async def test_an_outage_is_retried_until_the_operation_succeeds() -> None:
    attempts = []

    async def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("database down")
        return 42

    before = retries_of("test-db")

    assert await retry_infrastructure(flaky, dependency="test-db", backoff=QUICK) == 42
    assert len(attempts) == 3
    assert retries_of("test-db") == before + 2


async def test_a_failure_that_is_not_an_outage_is_raised_at_once() -> None:
    attempts = []

    async def broken() -> None:
        attempts.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await retry_infrastructure(broken, dependency="test-db", backoff=QUICK)
    assert len(attempts) == 1


def test_backoff_grows_exponentially_up_to_its_cap_with_jitter_below_each_ceiling() -> None:
    backoff = Backoff(first_delay_seconds=0.1, max_delay_seconds=1.0)

    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [backoff.delay_seconds(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), attempt


@pytest.mark.parametrize(
    ("failure", "is_outage"),
    [
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (redis.exceptions.ConnectionError(), True),
        (redis.exceptions.TimeoutError(), True),
        (redis.exceptions.ResponseError("WRONGTYPE"), False),
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is locked")), True),
        (sqlalchemy.exc.ProgrammingError("SELECT 1", {}, Exception("no such table")), True),
        (sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("foreign key")), False),
        (sqlalchemy.exc.DataError("INSERT", {}, Exception("value too long")), False),
        (sqlalchemy.exc.TimeoutError("pool exhausted"), True),
        (KafkaConnectionError(), True),
        (KafkaTimeoutError(), True),
        (MessageSizeTooLargeError(), False),
        (wrapped(KafkaTimeoutError()), True),
        (wrapped(MessageSizeTooLargeError()), False),
        (ValueError(), False),
        (KeyError(), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_outages_are_told_apart_from_bad_data_and_bugs(
    failure: BaseException, is_outage: bool
) -> None:
    assert is_infrastructure_failure(failure) is is_outage
