"""Runtime configuration shared by the worker, the API and the CLI.

Read once from the environment (pydantic-settings); nothing else in the code reads os.environ for
configuration, so one place documents every knob.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./spikewatch.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = "redis://127.0.0.1:16379/0"
    # Redis Cluster: REDIS_URL then names one or more of its nodes, comma-separated
    # (schemas/redis_client.py).
    redis_cluster: bool = False
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    # The topics the worker finds missing it creates with these (a deployment may also provision
    # them itself): partitions cap the worker processes that can share the input; on a cluster of
    # three or more brokers, 3 replicas with min.insync.replicas 2 keep every acknowledged event
    # through the loss of one broker. Unset min.insync.replicas: the broker's default.
    kafka_topic_partitions: int = Field(default=4, ge=1)
    kafka_topic_replication_factor: int = Field(default=1, ge=1)
    kafka_topic_min_insync_replicas: int | None = Field(default=None, ge=1)

    topic_exception_events: str = "exception_events"
    topic_exception_events_accepted: str = "exception_events_accepted"
    topic_exception_events_dlq: str = "exception_events_dlq"
    topic_spike_events: str = "error_tracking_spike_events"

    consumer_group: str = "spikewatch"
    # Static group membership: a worker restarted under the same id takes its partitions back at
    # once. Give each worker process its own id, stable across its restarts; "{hostname}" in it
    # stands for the host's name (worker/consumer.py). Unset: dynamic membership.
    worker_instance_id: str | None = None
    # A member that sends no heartbeat for this long leaves the group and its partitions move.
    consumer_session_timeout_seconds: float = Field(default=15.0, ge=6, le=300)
    batch_max_events: int = Field(default=1000, ge=1)
    batch_within_seconds: float = Field(default=0.2, gt=0)
    # A worker with events waiting and no batch finished for this long exits (status 75) for its
    # supervisor to restart it (worker/stall_watchdog.py); 0 turns the watchdog off.
    stall_limit_seconds: float = Field(default=180.0, ge=0)

    bucket_size_seconds: int = Field(default=300, ge=1)
    history_buckets: int = Field(default=11, ge=1)

    max_message_bytes: int = Field(default=1_000_000, ge=1)
    max_exceptions_per_event: int = Field(default=50, ge=1)
    max_frames_per_exception: int = Field(default=500, ge=1)

    issue_cache_size: int = Field(default=100_000, ge=1)
    frame_cache_size: int = Field(default=200_000, ge=1)

    worker_web_port: int = Field(default=6066, ge=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0)
    api_max_body_bytes: int = Field(default=1_000_000, ge=1)
    api_cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        # More in-sync replicas required than a topic has would refuse every write with acks=all.
        insync = self.kafka_topic_min_insync_replicas
        if insync is not None and insync > self.kafka_topic_replication_factor:
            raise ValueError(
                f"KAFKA_TOPIC_MIN_INSYNC_REPLICAS ({insync}) exceeds "
                f"KAFKA_TOPIC_REPLICATION_FACTOR ({self.kafka_topic_replication_factor}): "
                "no write with acks=all could succeed"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
