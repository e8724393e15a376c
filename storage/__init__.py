"""Atelier's persistent state: SQLAlchemy 2 async on SQLite (default) or PostgreSQL.

Everything outside this package goes through ``Storage`` (see ``storage.repository``);
nothing outside it may import the core's table definitions to write them or open its own
connection. The core's schema changes only through the Alembic migrations in
``storage/migrations``. A plugin may own tables: it ships their migrations (run by
``Storage.upgrade_plugin`` with a version table of its own) and reaches them through the
engine the app injects, with ``storage.repository.translated`` for its errors.
"""

from __future__ import annotations

from storage.repository import AuditEntry, Identity, Storage, StoredMessage

__all__ = ["AuditEntry", "Identity", "Storage", "StoredMessage"]
