"""The ``moderation`` plugin's own tables (its migrations: ``migrations/``).

``mod_terms``: each server's block and allow lists (words, phrases and regular
expressions). ``mod_rules``: each server's threshold and action per category, where it
differs from the defaults. ``mod_log``: what was flagged — who, where, what (cut short),
which layer, category, score and action, when — kept for ``log_retention_days`` and at
most ``max_log_rows`` per server. Rows belong to the core's servers.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from storage import models
from storage.models import NAMING_CONVENTION, PK, Timestamp, utcnow

metadata = MetaData(naming_convention=NAMING_CONVENTION)
# The core's table these refer to, copied in so the foreign keys resolve (the core's
# migrations own it; nothing here creates or changes it).
models.servers.to_metadata(metadata)

LISTS = ("block", "allow")
EXCERPT_CHARS = 300
WHERE = ("message", "command", "reply", "upload")

mod_terms = Table(
    "mod_terms",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("server_id", PK, ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("list", String(5), nullable=False),
    Column("pattern", String(200), nullable=False),
    Column("is_regex", Boolean, nullable=False, default=False),
    Column("added_by_name", String(100), nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    CheckConstraint(f"list IN {LISTS!r}", name="list"),
    UniqueConstraint("server_id", "list", "pattern", "is_regex", name="uq_mod_terms_entry"),
)

mod_rules = Table(
    "mod_rules",
    metadata,
    Column("server_id", PK, ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("category", String(16), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("action", String(8), nullable=False),
    PrimaryKeyConstraint("server_id", "category", name="pk_mod_rules"),
)

mod_log = Table(
    "mod_log",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("server_id", PK, ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("message_id", String(64), nullable=False, default=""),
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(100), nullable=False, default=""),
    Column("place", String(8), nullable=False),  # message, command, reply, upload
    Column("excerpt", String(EXCERPT_CHARS), nullable=False),
    Column("layer", String(12), nullable=False),  # list, builtin, classifier, judge
    Column("category", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("action", String(8), nullable=False),  # what was done ("exempt": nothing)
    Column("created_at", Timestamp, nullable=False, default=utcnow),
    CheckConstraint(f"place IN {WHERE!r}", name="place"),
    Index("ix_mod_log_server_id_id", "server_id", "id"),
    Index("ix_mod_log_created_at", "created_at"),
)
