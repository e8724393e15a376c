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
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

MESSAGE_ROLES = ("user", "assistant", "system", "tool")
"""The roles a stored chat message may have."""

# Deterministic constraint names keep migrations portable (SQLite batch mode needs them).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

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
    Column("system_prompt", Text, nullable=True),
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
    Column("is_chat_channel", Boolean, nullable=False, default=False, server_default=false()),
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

plugin_settings = Table(
    "plugin_settings",
    metadata,
    Column("id", PK, primary_key=True),
    _fk("server_id", "servers.id"),
    Column("plugin", String(128), nullable=False),
    Column("enabled", Boolean, nullable=True),
    Column("config", JSONType, nullable=False, default=dict),
    Column("updated_at", Timestamp, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("server_id", "plugin", name="uq_plugin_settings_server_id_plugin"),
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

IMAGE_JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
"""The states of an image job; queued and running ones are re-enqueued after a crash."""

image_jobs = Table(
    "image_jobs",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex, also in file names and buttons
    Column("status", String(16), nullable=False),
    _fk("server_id", "servers.id"),
    _fk("user_id", "users.id"),
    _fk("channel_id", "channels.id"),
    Column("params", JSONType, nullable=False, default=dict),
    Column("seed", BigInteger, nullable=False),  # seeds reach 2**32 - 1: too big for INTEGER
    Column("count", Integer, nullable=False),
    Column("worker", String(256), nullable=True),
    Column("results", JSONType, nullable=False, default=list),
    Column("sha256", JSONType, nullable=False, default=list),
    Column("error", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    Column("started_at", Timestamp, nullable=True),
    Column("finished_at", Timestamp, nullable=True),
    CheckConstraint(f"status IN {IMAGE_JOB_STATUSES!r}", name="status"),
    # The daily quotas count one server's, one user's or everybody's jobs since midnight;
    # retention deletes by age; recovery reads by status.
    Index("ix_image_jobs_server_id_created_at", "server_id", "created_at"),
    Index("ix_image_jobs_user_id_created_at", "user_id", "created_at"),
    Index("ix_image_jobs_created_at", "created_at"),
    Index("ix_image_jobs_status", "status"),
)
