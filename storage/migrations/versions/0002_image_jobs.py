"""Image jobs: one row per /imagine (or generate_image) request, with its results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (models.py may move on).
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def _fk(name: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [name],
        [f"{target}.id"],
        name=op.f(f"fk_image_jobs_{name}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create ``image_jobs`` and its indexes."""
    op.create_table(
        "image_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("server_id", PK, nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("channel_id", PK, nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("results", JSON, nullable=False),
        sa.Column("sha256", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        _fk("server_id", "servers"),
        _fk("user_id", "users"),
        _fk("channel_id", "channels"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name=op.f("ck_image_jobs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_jobs")),
    )
    op.create_index("ix_image_jobs_server_id_created_at", "image_jobs", ["server_id", "created_at"])
    op.create_index("ix_image_jobs_status", "image_jobs", ["status"])


def downgrade() -> None:
    """Drop ``image_jobs`` (its files under ``<data_dir>/images`` stay)."""
    op.drop_index("ix_image_jobs_status", table_name="image_jobs")
    op.drop_index("ix_image_jobs_server_id_created_at", table_name="image_jobs")
    op.drop_table("image_jobs")
