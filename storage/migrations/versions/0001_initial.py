"""Initial schema: servers, channels, users, plugin settings, conversations, messages, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (models.py may move on).
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", PK, nullable=False)


def _fk(owner: str, name: str, target: str, *, nullable: bool = False) -> list[SchemaItem]:
    """A foreign-key column of ``owner`` referring to ``target.id``, and its constraint."""
    return [
        sa.Column(name, PK, nullable=nullable),
        sa.ForeignKeyConstraint(
            [name],
            [f"{target}.id"],
            name=op.f(f"fk_{owner}_{name}_{target}"),
            ondelete="SET NULL" if nullable else "CASCADE",
        ),
    ]


def _table(name: str, *items: SchemaItem) -> None:
    op.create_table(name, *items, sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")))


def upgrade() -> None:
    """Create every table and index."""
    _table(
        "servers",
        _id(),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("platform", "external_id", name="uq_servers_platform_external_id"),
    )
    _table(
        "users",
        _id(),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.UniqueConstraint("platform", "external_id", name="uq_users_platform_external_id"),
    )
    _table(
        "channels",
        _id(),
        *_fk("channels", "server_id", "servers"),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("is_chat_channel", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.UniqueConstraint("server_id", "external_id", name="uq_channels_server_id_external_id"),
    )
    _table(
        "plugin_settings",
        _id(),
        *_fk("plugin_settings", "server_id", "servers"),
        sa.Column("plugin", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("server_id", "plugin", name="uq_plugin_settings_server_id_plugin"),
    )
    _table(
        "conversations",
        _id(),
        *_fk("conversations", "server_id", "servers"),
        *_fk("conversations", "channel_id", "channels"),
        *_fk("conversations", "user_id", "users"),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint(
            "server_id",
            "channel_id",
            "user_id",
            name="uq_conversations_server_id_channel_id_user_id",
        ),
    )
    _table(
        "messages",
        _id(),
        *_fk("messages", "conversation_id", "conversations"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "role IN ('user', 'assistant', 'system', 'tool')", name=op.f("ck_messages_role")
        ),
    )
    op.create_index("ix_messages_conversation_id_id", "messages", ["conversation_id", "id"])
    _table(
        "audit_log",
        _id(),
        *_fk("audit_log", "server_id", "servers"),
        *_fk("audit_log", "user_id", "users", nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_audit_log_server_id_id", "audit_log", ["server_id", "id"])


def downgrade() -> None:
    """Drop everything ``upgrade`` created (children first)."""
    op.drop_index("ix_audit_log_server_id_id", table_name="audit_log")
    op.drop_index("ix_messages_conversation_id_id", table_name="messages")
    for table in (
        "audit_log",
        "messages",
        "conversations",
        "plugin_settings",
        "channels",
        "users",
        "servers",
    ):
        op.drop_table(table)
