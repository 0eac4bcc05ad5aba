"""The database tables (SQLAlchemy 2 declarative models), shared by the API and the worker.

The Alembic migrations in ``schemas/migrations`` create exactly these tables; a test compares the
migrated schema with this metadata so the two never drift. Types are chosen to work on SQLite (the
embedded default) and PostgreSQL (production) alike.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")

DEFAULT_SPIKE_MULTIPLIER = 10
DEFAULT_SPIKE_THRESHOLD = 500
DEFAULT_SNOOZE_DURATION_MINUTES = 10
# How a project's spikes are decided: the seed's rule ("mean") or the robust, seasonal, count-aware
# "adaptive" one (worker/spike_rule.py, DETECTION.md).
SPIKE_DETECTORS = ("mean", "adaptive")
DEFAULT_SPIKE_DETECTOR = "mean"
DEFAULT_SAMPLING_RATE = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PersonalApiKey(Base):
    """A personal API key: only the SHA-256 of the secret is stored."""

    __tablename__ = "personal_api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    label: Mapped[str] = mapped_column(String(200))
    secure_value: Mapped[str] = mapped_column(String(64), unique=True)
    mask_value: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[list[str]] = mapped_column(JsonType, default=list)
    # None means every project; otherwise the list of project ids the key may touch.
    project_ids: Mapped[list[int] | None] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Release(Base):
    __tablename__ = "error_tracking_releases"
    __table_args__ = (UniqueConstraint("team_id", "hash_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    team_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    hash_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(Text)
    project: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ErrorTrackingSettings(Base):
    """Rate limits: ``value`` events per ``bucket_size_minutes``; a null value means no limit."""

    __tablename__ = "error_tracking_settings"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    project_rate_limit_value: Mapped[int | None] = mapped_column(Integer, nullable=True)
    project_rate_limit_bucket_size_minutes: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )
    per_issue_rate_limit_value: Mapped[int | None] = mapped_column(Integer, nullable=True)
    per_issue_rate_limit_bucket_size_minutes: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SpikeDetectionConfig(Base):
    __tablename__ = "error_tracking_spike_detection_config"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    snooze_duration_minutes: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_SNOOZE_DURATION_MINUTES
    )
    multiplier: Mapped[int] = mapped_column(Integer, default=DEFAULT_SPIKE_MULTIPLIER)
    threshold: Mapped[int] = mapped_column(Integer, default=DEFAULT_SPIKE_THRESHOLD)
    # One of SPIKE_DETECTORS; rows from before the field existed read as the seed's rule.
    detector: Mapped[str] = mapped_column(
        String(20), default=DEFAULT_SPIKE_DETECTOR, server_default=DEFAULT_SPIKE_DETECTOR
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Issue(Base):
    __tablename__ = "error_tracking_issues"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class IssueFingerprint(Base):
    """Maps a fingerprint to its issue; unique per project so concurrent workers agree."""

    __tablename__ = "error_tracking_issue_fingerprints"
    __table_args__ = (UniqueConstraint("project_id", "fingerprint"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    issue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("error_tracking_issues.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SpikeEvent(Base):
    """A detected spike; ``id`` is deterministic per (issue, bucket_start) so retries dedupe."""

    __tablename__ = "error_tracking_spike_events"
    __table_args__ = (
        Index("ix_spike_events_project_detected", "project_id", "detected_at"),
        Index("ix_spike_events_issue_detected", "issue_id", "detected_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    issue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("error_tracking_issues.id", ondelete="CASCADE")
    )
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    computed_baseline: Mapped[float] = mapped_column(Float)
    current_bucket_value: Mapped[int] = mapped_column(BigInteger)
    bucket_start: Mapped[datetime] = mapped_column(UtcDateTime)
    threshold: Mapped[int] = mapped_column(Integer)
    multiplier: Mapped[int] = mapped_column(Integer)

    issue: Mapped[Issue] = relationship(lazy="raise")


class SymbolSet(Base):
    """A symbol set reference seen on frames, linked to the release that shipped it."""

    __tablename__ = "error_tracking_symbol_sets"
    __table_args__ = (UniqueConstraint("project_id", "ref"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    ref: Mapped[str] = mapped_column(Text)
    release_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("error_tracking_releases.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    release: Mapped[Release | None] = relationship(lazy="raise")


class StackFrame(Base):
    __tablename__ = "error_tracking_stack_frames"
    __table_args__ = (UniqueConstraint("project_id", "raw_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    raw_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    symbol_set_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("error_tracking_symbol_sets.id", ondelete="SET NULL"), nullable=True, index=True
    )
    contents: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    context: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)

    symbol_set: Mapped[SymbolSet | None] = relationship(lazy="raise")


class SuppressionRule(Base):
    __tablename__ = "error_tracking_suppression_rules"
    __table_args__ = (Index("ix_suppression_rules_project_order", "project_id", "order_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    filters: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    order_key: Mapped[int] = mapped_column(Integer, default=0)
    disabled_data: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    sampling_rate: Mapped[float] = mapped_column(Float, default=DEFAULT_SAMPLING_RATE)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
