"""Alembic environment for Atelier's storage.

``storage`` runs migrations in-process: it hands a live connection in through
``config.attributes["connection"]``. Run by the ``alembic`` command instead (e.g.
``alembic -x url=sqlite+aiosqlite:///data/atelier.db revision --autogenerate``), this file
opens its own async engine from ``-x url=...`` or the ``sqlalchemy.url`` option. It never
creates tables outside a migration script.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        # A plugin's own line of migrations keeps its own version table and tables.
        version_table=config.attributes.get("version_table", "alembic_version"),
        target_metadata=config.attributes.get("metadata") or metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url or config.get_main_option("sqlalchemy.url") or ""


async def _run_with_own_engine() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine())
