"""Engine construction and schema migration for ``storage`` (private to the package).

Builds the async engine with per-backend tuning (and, for a SQLite file, the synchronous
engine the group-commit writer holds its own connection of) and runs Alembic in-process on
one of its connections. It never creates tables any other way than through the migrations and never
reads an ``alembic.ini``: the Alembic configuration is built here, in code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData, event, make_url, text
from sqlalchemy import create_engine as create_engine_sync
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Where Alembic's ``env.py`` and ``versions/`` live (shipped as package data)."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Any constant works; it only has to be the same in every process migrating this database.
_PG_MIGRATION_LOCK = 0x61746C72


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url``, tuned for its backend (SQLite or PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    if not _in_memory(url):
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo)
    _tune_sqlite(engine.sync_engine, in_memory=_in_memory(url))
    return engine


def writer_engine(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine on ``engine``'s SQLite file, for the group-commit writer.

    The writer holds one connection of it in a thread of its own, so a flush is one hand-off
    between threads instead of one per driver call (aiosqlite runs each cursor, execute,
    commit and pool reset as a separate hop, and on a busy loop each hop waits its turn).
    None for PostgreSQL (asyncpg needs no threads) and in-memory SQLite (a second connection
    would open a different, empty database): there the writer shares ``engine``.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or _in_memory(url):
        return None
    sync = create_engine_sync(
        url.set(drivername="sqlite+pysqlite"), echo=engine.echo, poolclass=NullPool
    )
    _tune_sqlite(sync, in_memory=False)
    return sync


def _in_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:")


def _tune_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                # WAL lets readers run while the group-commit writer writes.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()


@dataclass(frozen=True, slots=True)
class History:
    """One line of migrations: the core's, or a plugin's own (its folder, its version table)."""

    versions: Path = MIGRATIONS_DIR / "versions"
    version_table: str = "alembic_version"
    metadata: MetaData | None = None  # the tables it describes (for autogenerate)


CORE = History()


def alembic_config(connection: Connection | None = None, history: History = CORE) -> Config:
    """An Alembic ``Config`` for ``history`` (the core's migrations by default).

    With ``connection``, ``env.py`` migrates on it instead of opening its own engine.
    Each plugin's migrations are a line of their own with their own version table, so a
    plugin can be added or removed without touching anyone else's history.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")  # a path with spaces stays one path
    config.set_main_option("version_locations", str(history.versions))
    config.attributes["version_table"] = history.version_table
    config.attributes["metadata"] = history.metadata
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade_to_head(engine: AsyncEngine, history: History = CORE) -> None:
    """Apply every pending migration of ``history``; one already at head is left untouched."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_sync, history)


def _upgrade_sync(connection: Connection, history: History) -> None:
    if connection.dialect.name == "postgresql":
        # Several bot processes may start at once against one database: migrate one at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    command.upgrade(alembic_config(connection, history), "head")
