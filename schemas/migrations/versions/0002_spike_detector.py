"""The spike detector of each project's spike_detection_config: "mean" (the seed's rule, and what
every existing row keeps) or "adaptive".

Revision ID: 0002_spike_detector
Revises: 0001_initial
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_spike_detector"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "error_tracking_spike_detection_config"


def upgrade() -> None:
    op.add_column(
        TABLE,
        sa.Column("detector", sa.String(length=20), nullable=False, server_default="mean"),
    )


def downgrade() -> None:
    # SQLite drops a column by copying the table; PostgreSQL in place.
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("detector")
