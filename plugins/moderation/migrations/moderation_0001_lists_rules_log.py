"""The moderation plugin's lists, per-category rules and log.

Revision ID: moderation_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "moderation_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (tables.py may move on).
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def _server_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["server_id"],
        ["servers.id"],
        name=op.f(f"fk_{table}_server_id_servers"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create ``mod_terms``, ``mod_rules`` and ``mod_log``."""
    op.create_table(
        "mod_terms",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("server_id", PK, nullable=False),
        sa.Column("list", sa.String(5), nullable=False),
        sa.Column("pattern", sa.String(200), nullable=False),
        sa.Column("is_regex", sa.Boolean(), nullable=False),
        sa.Column("added_by_name", sa.String(100), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("list IN ('block', 'allow')", name=op.f("ck_mod_terms_list")),
        _server_fk("mod_terms"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mod_terms")),
        sa.UniqueConstraint(
            "server_id", "list", "pattern", "is_regex", name=op.f("uq_mod_terms_entry")
        ),
    )
    op.create_table(
        "mod_rules",
        sa.Column("server_id", PK, nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        _server_fk("mod_rules"),
        sa.PrimaryKeyConstraint("server_id", "category", name=op.f("pk_mod_rules")),
    )
    op.create_table(
        "mod_log",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("server_id", PK, nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(100), nullable=False),
        sa.Column("place", sa.String(8), nullable=False),
        sa.Column("excerpt", sa.String(300), nullable=False),
        sa.Column("layer", sa.String(12), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "place IN ('message', 'command', 'reply', 'upload')", name=op.f("ck_mod_log_place")
        ),
        _server_fk("mod_log"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mod_log")),
    )
    op.create_index("ix_mod_log_server_id_id", "mod_log", ["server_id", "id"])
    op.create_index("ix_mod_log_created_at", "mod_log", ["created_at"])


def downgrade() -> None:
    """Drop the moderation tables."""
    op.drop_index("ix_mod_log_created_at", table_name="mod_log")
    op.drop_index("ix_mod_log_server_id_id", table_name="mod_log")
    op.drop_table("mod_log")
    op.drop_table("mod_rules")
    op.drop_table("mod_terms")
