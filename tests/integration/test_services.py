"""Smoke tests for the local services that ``scripts/services.sh`` starts.

They prove each server answers the clients spikewatch uses (aiokafka, redis-py, asyncpg through
SQLAlchemy) with the exact data sent; they never start, stop or reconfigure a service themselves.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

KAFKA_ROUND_TRIP_TIMEOUT_SECONDS = 60

# INCRBY then EXPIRE, answering with the new total and the TTL just set, so one call proves the
# script ran server-side with both KEYS and ARGV.
ADD_WITH_TTL_LUA = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {total, redis.call('TTL', KEYS[1])}
"""


@pytest.mark.kafka
async def test_kafka_round_trip_reads_back_the_exact_record_and_commits_its_offset(
    kafka_bootstrap: str,
) -> None:
    topic = f"spikewatch-smoke-{uuid.uuid4().hex}"
    key = b"42"
    value = b'{"uuid": "0192f5a4-0000-7000-8000-000000000001", "event": "$exception"}'
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        async with asyncio.timeout(KAFKA_ROUND_TRIP_TIMEOUT_SECONDS):
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
            await producer.start()
            try:
                sent = await producer.send_and_wait(topic, value=value, key=key)
            finally:
                await producer.stop()

            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=kafka_bootstrap,
                group_id=f"{topic}-group",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            try:
                record = await consumer.getone()
                await consumer.commit()
                committed = await consumer.committed(TopicPartition(topic, 0))
            finally:
                await consumer.stop()
    finally:
        await admin.delete_topics([topic])
        await admin.close()

    assert (sent.topic, sent.partition, sent.offset) == (topic, 0, 0)
    assert (record.topic, record.partition, record.offset) == (topic, 0, 0)
    assert record.key == key
    assert record.value == value
    assert committed == 1


@pytest.mark.redis
async def test_redis_runs_a_registered_lua_script_with_keys_and_args(redis_url: str) -> None:
    key = f"spikewatch-smoke:{uuid.uuid4().hex}"
    client = Redis.from_url(redis_url)
    try:
        add_with_ttl = client.register_script(ADD_WITH_TTL_LUA)
        # The first call loads the script after NOSCRIPT; the second runs it by its SHA.
        first = await add_with_ttl(keys=[key], args=[3, 60])
        second = await add_with_ttl(keys=[key], args=[4, 60])
        stored = await client.get(key)
    finally:
        await client.delete(key)
        await client.aclose()

    assert first == [3, 60]
    assert second == [7, 60]
    assert stored == b"7"


@pytest.mark.postgres
async def test_postgres_answers_as_the_spikewatch_superuser_in_the_test_database(
    postgres_url: str,
) -> None:
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            one = await connection.scalar(text("select 1"))
            row = (
                await connection.execute(
                    text(
                        "select current_user, current_database(), rolsuper "
                        "from pg_roles where rolname = current_user"
                    )
                )
            ).one()
    finally:
        await engine.dispose()

    assert one == 1
    assert tuple(row) == ("spikewatch", "spikewatch_test", True)
