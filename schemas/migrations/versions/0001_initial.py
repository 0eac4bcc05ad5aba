"""Initial schema: projects, API keys, releases, settings, issues, frames, rules and spikes.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26

Written out in full rather than imported from schemas.tables, so that later changes to the models
never rewrite history; tests/test_migrations.py checks the result against the metadata.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The storage types behind schemas.tables.JsonType and schemas.tables.UtcDateTime.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_table(
        "personal_api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("secure_value", sa.String(length=64), nullable=False),
        sa.Column("mask_value", sa.String(length=32), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("project_ids", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_api_keys")),
        sa.UniqueConstraint("secure_value", name=op.f("uq_personal_api_keys_secure_value")),
    )
    op.create_table(
        "error_tracking_releases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("hash_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("metadata", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_releases_team_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_tracking_releases")),
        sa.UniqueConstraint(
            "team_id", "hash_id", name=op.f("uq_error_tracking_releases_team_id_hash_id")
        ),
    )
    op.create_index(
        op.f("ix_error_tracking_releases_team_id"), "error_tracking_releases", ["team_id"]
    )
    op.create_table(
        "error_tracking_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("project_rate_limit_value", sa.Integer(), nullable=True),
        sa.Column("project_rate_limit_bucket_size_minutes", sa.Integer(), nullable=True),
        sa.Column("per_issue_rate_limit_value", sa.Integer(), nullable=True),
        sa.Column("per_issue_rate_limit_bucket_size_minutes", sa.Integer(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_settings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_error_tracking_settings")),
    )
    op.create_table(
        "error_tracking_spike_detection_config",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("snooze_duration_minutes", sa.Integer(), nullable=False),
        sa.Column("multiplier", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_spike_detection_config_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "project_id", name=op.f("pk_error_tracking_spike_detection_config")
        ),
    )
    op.create_table(
        "error_tracking_issues",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_issues_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_tracking_issues")),
    )
    op.create_index(
        op.f("ix_error_tracking_issues_project_id"), "error_tracking_issues", ["project_id"]
    )
    op.create_table(
        "error_tracking_issue_fingerprints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("issue_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_issue_fingerprints_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["error_tracking_issues.id"],
            name=op.f("fk_error_tracking_issue_fingerprints_issue_id_error_tracking_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_tracking_issue_fingerprints")),
        sa.UniqueConstraint(
            "project_id",
            "fingerprint",
            name=op.f("uq_error_tracking_issue_fingerprints_project_id_fingerprint"),
        ),
    )
    op.create_index(
        op.f("ix_error_tracking_issue_fingerprints_issue_id"),
        "error_tracking_issue_fingerprints",
        ["issue_id"],
    )
    op.create_table(
        "error_tracking_spike_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Uuid(), nullable=False),
        sa.Column("detected_at", TIMESTAMP, nullable=False),
        sa.Column("computed_baseline", sa.Float(), nullable=False),
        sa.Column("current_bucket_value", sa.BigInteger(), nullable=False),
        sa.Column("bucket_start", TIMESTAMP, nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("multiplier", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_spike_events_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["error_tracking_issues.id"],
            name=op.f("fk_error_tracking_spike_events_issue_id_error_tracking_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_tracking_spike_events")),
    )
    op.create_index(
        "ix_spike_events_project_detected",
        "error_tracking_spike_events",
        ["project_id", "detected_at"],
    )
    op.create_index(
        "ix_spike_events_issue_detected", "error_tracking_spike_events", ["issue_id", "detected_at"]
    )
    op.create_table(
        "error_tracking_symbol_sets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("release_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_symbol_sets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["error_tracking_releases.id"],
            name=op.f("fk_error_tracking_symbol_sets_release_id_error_tracking_releases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_tracking_symbol_sets")),
        sa.UniqueConstraint(
            "project_id", "ref", name=op.f("uq_error_tracking_symbol_sets_project_id_ref")
        ),
    )
    op.create_index(
        op.f("ix_error_tracking_symbol_sets_release_id"),
        "error_tracking_symbol_sets",
        ["release_id"],
    )
    op.create_table(
        "error_tracking_stack_frames",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("raw_id", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("symbol_set_id", sa.Uuid(), nullable=True),
        sa.Column("contents", JSON, nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("context", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_stack_frames_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["symbol_set_id"],
            ["error_tracking_symbol_sets.id"],
            name=op.f("fk_error_tracking_stack_frames_symbol_set_id_error_tracking_symbol_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_tracking_stack_frames")),
        sa.UniqueConstraint(
            "project_id", "raw_id", name=op.f("uq_error_tracking_stack_frames_project_id_raw_id")
        ),
    )
    op.create_index(
        op.f("ix_error_tracking_stack_frames_symbol_set_id"),
        "error_tracking_stack_frames",
        ["symbol_set_id"],
    )
    op.create_table(
        "error_tracking_suppression_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("filters", JSON, nullable=True),
        sa.Column("order_key", sa.Integer(), nullable=False),
        sa.Column("disabled_data", JSON, nullable=True),
        sa.Column("sampling_rate", sa.Float(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_error_tracking_suppression_rules_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_tracking_suppression_rules")),
    )
    op.create_index(
        "ix_suppression_rules_project_order",
        "error_tracking_suppression_rules",
        ["project_id", "order_key"],
    )


def downgrade() -> None:
    # Children before parents; each table takes its indexes and constraints with it.
    for table in (
        "error_tracking_suppression_rules",
        "error_tracking_stack_frames",
        "error_tracking_symbol_sets",
        "error_tracking_spike_events",
        "error_tracking_issue_fingerprints",
        "error_tracking_issues",
        "error_tracking_spike_detection_config",
        "error_tracking_settings",
        "error_tracking_releases",
        "personal_api_keys",
        "projects",
    ):
        op.drop_table(table)
