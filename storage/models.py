"""The database schema of Atelier, as SQLAlchemy Core tables.

This module is the single description of the tables; ``migrations/versions`` must agree
with it (a test compares them). It declares tables only: it never opens a connection,
never holds state and never knows about a platform or the bot core.

Primary keys are surrogate integers ("pk"); the platform's own ids are ``external_id``
strings, unique per platform (servers, users) or per server (channels). Times are stored
in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

MESSAGE_ROLES = ("user", "assistant", "system", "tool")
"""The roles a stored chat message may have."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names keep migrations portable (SQLite batch mode needs them);
plugins' own tables use the same convention."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
PK = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of time stored)."""
    return datetime.now(UTC)


def _fk(name: str, target: str, *, nullable: bool = False) -> Column[int]:
    ondelete = "SET NULL" if nullable else "CASCADE"
    return Column(name, PK, ForeignKey(target, ondelete=ondelete), nullable=nullable)


servers = Table(
    "servers",
    metadata,
    Column("id", PK, primary_key=True),
    Column("platform", String(32), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("name", String(256), nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    UniqueConstraint("platform", "external_id", name="uq_servers_platform_external_id"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", PK, primary_key=True),
    _fk("server_id", "servers.id"),
    Column("external_id", String(128), nullable=False),
    Column("name", String(256), nullable=False, default=""),
    UniqueConstraint("server_id", "external_id", name="uq_channels_server_id_external_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", PK, primary_key=True),
    Column("platform", String(32), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("name", String(256), nullable=False, default=""),
    UniqueConstraint("platform", "external_id", name="uq_users_platform_external_id"),
)

SETTING_SCOPES = ("global", "server", "channel", "user")
"""Where a setting applies; ``target_id`` is 0 (global) or the server's, channel's or
user's key."""

settings = Table(
    "settings",
    metadata,
    Column("id", PK, primary_key=True),
    Column("scope", String(8), nullable=False),
    Column("target_id", BigInteger, nullable=False),
    Column("namespace", String(64), nullable=False),  # "core", or a plugin's name
    Column("key", String(64), nullable=False),
    Column("value", JSONType, nullable=False),
    Column("updated_at", Timestamp, nullable=False, default=utcnow, onupdate=utcnow),
    CheckConstraint(f"scope IN {SETTING_SCOPES!r}", name="scope"),
    # Reads are "every value of one scope and target": the constraint's index serves them.
    UniqueConstraint(
        "scope", "target_id", "namespace", "key", name="uq_settings_scope_target_id_namespace_key"
    ),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", PK, primary_key=True),
    _fk("server_id", "servers.id"),
    _fk("channel_id", "channels.id"),
    _fk("user_id", "users.id"),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    UniqueConstraint(
        "server_id", "channel_id", "user_id", name="uq_conversations_server_id_channel_id_user_id"
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", PK, primary_key=True),
    _fk("conversation_id", "conversations.id"),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("token_count", Integer, nullable=True),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    CheckConstraint(f"role IN {MESSAGE_ROLES!r}", name="role"),
    # history() reads "the last N of one conversation": this index serves it alone.
    Index("ix_messages_conversation_id_id", "conversation_id", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", PK, primary_key=True),
    _fk("server_id", "servers.id"),
    _fk("user_id", "users.id", nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("detail", JSONType, nullable=False, default=dict),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    Index("ix_audit_log_server_id_id", "server_id", "id"),
)
