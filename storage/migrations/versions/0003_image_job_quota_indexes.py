"""Indexes for the per-user and global daily image quotas and for image retention.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index ``image_jobs`` by user and time (per-user quota) and by time (global, retention)."""
    op.create_index("ix_image_jobs_user_id_created_at", "image_jobs", ["user_id", "created_at"])
    op.create_index("ix_image_jobs_created_at", "image_jobs", ["created_at"])


def downgrade() -> None:
    """Drop the two indexes."""
    op.drop_index("ix_image_jobs_created_at", table_name="image_jobs")
    op.drop_index("ix_image_jobs_user_id_created_at", table_name="image_jobs")
