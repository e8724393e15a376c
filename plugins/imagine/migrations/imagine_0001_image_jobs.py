"""The imagine plugin's table, ``image_jobs``: created here unless an older Atelier made it.

Until the plugin owned its table, the core's migrations 0002 and 0003 created
``image_jobs`` and its indexes. Databases from then already have them (with their rows):
this revision keeps what exists and adds only what is missing, so they upgrade in place.

Revision ID: imagine_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "imagine_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (tables.py may move on).
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
INDEXES = {
    "ix_image_jobs_server_id_created_at": ["server_id", "created_at"],
    "ix_image_jobs_user_id_created_at": ["user_id", "created_at"],
    "ix_image_jobs_created_at": ["created_at"],
    "ix_image_jobs_status": ["status"],
}


def _fk(name: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [name],
        [f"{target}.id"],
        name=op.f(f"fk_image_jobs_{name}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create ``image_jobs`` and each of its indexes unless it is there already."""
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("image_jobs"):
        _create_table()
        present: set[str] = set()
    else:
        present = {index["name"] or "" for index in inspector.get_indexes("image_jobs")}
    for name, columns in INDEXES.items():
        if name not in present:
            op.create_index(name, "image_jobs", columns)


def _create_table() -> None:
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


def downgrade() -> None:
    """Drop ``image_jobs`` (its files under ``<data_dir>/images`` stay)."""
    for name in INDEXES:
        op.drop_index(name, table_name="image_jobs")
    op.drop_table("image_jobs")
