"""Atelier's persistent state: SQLAlchemy 2 async on SQLite (default) or PostgreSQL.

Everything outside this package goes through ``Storage`` (see ``storage.repository``);
nothing outside it may import the table definitions or open its own connection. The schema
changes only through the Alembic migrations in ``storage/migrations``.
"""

from __future__ import annotations

from storage.repository import AuditEntry, Identity, PluginOverride, Storage, StoredMessage

__all__ = ["AuditEntry", "Identity", "PluginOverride", "Storage", "StoredMessage"]
