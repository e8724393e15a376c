"""Stories: the schema comes from the Alembic migrations, and data outlives the process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from core.errors import StorageError
from core.events import Origin
from storage import Storage
from storage.models import metadata

MIGRATIONS = Path(__file__).resolve().parents[2] / "storage" / "migrations"

HEAD = sorted(p.stem.split("_")[0] for p in (MIGRATIONS / "versions").glob("0*.py"))[-1]
"""The newest revision (revision ids are numbered file prefixes: 0001, 0002, ...)."""

TABLES = {
    "servers",
    "channels",
    "users",
    "plugin_settings",
    "conversations",
    "messages",
    "audit_log",
}


async def _inspect(url: str) -> tuple[set[str], list[str], list[object]]:
    """Tables, alembic revisions and model-vs-database differences, from a fresh engine."""

    def look(conn: Connection) -> tuple[set[str], list[str], list[object]]:
        tables = set(inspect(conn).get_table_names())
        revisions = []
        if "alembic_version" in tables:
            revisions = [
                row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))
            ]
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        return tables, revisions, diff

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(look)
    finally:
        await engine.dispose()


async def test_opening_an_empty_database_migrates_it_to_head(database_url: str) -> None:
    storage = await Storage.open(database_url)
    await storage.close()

    tables, revisions, diff = await _inspect(database_url)
    assert TABLES <= tables
    assert revisions == [HEAD]
    assert diff == [], "models.py and the migrations disagree"


async def test_upgrade_is_idempotent_and_keeps_data(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await Storage.open(database_url)
    try:
        ids = await storage.identify(make_origin())
        await storage.append_messages(ids.conversation_pk, [("user", "still here?", None)])
        await storage.upgrade()
        await storage.upgrade()
        assert [m.content for m in await storage.history(ids.conversation_pk, 5)] == ["still here?"]
    finally:
        await storage.close()
    assert (await _inspect(database_url))[1] == [HEAD]


async def test_open_without_migrating_leaves_the_schema_to_upgrade(database_url: str) -> None:
    storage = await Storage.open(database_url, migrate=False)
    try:
        tables, _, _ = await _inspect(database_url)
        assert not TABLES & tables
        await storage.upgrade()
    finally:
        await storage.close()
    tables, revisions, _ = await _inspect(database_url)
    assert TABLES <= tables
    assert revisions == [HEAD]


async def test_everything_persists_after_close_and_reopen(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    first = await Storage.open(database_url)
    ids = await first.identify(make_origin())
    await first.append_messages(ids.conversation_pk, [("user", "hi", 1), ("assistant", "hello", 2)])
    await first.set_system_prompt(ids.server_pk, "Be terse.")
    await first.set_plugin_enabled(ids.server_pk, "imagine", False)
    await first.set_chat_channel(ids.channel_pk, True)
    await first.audit(ids.server_pk, ids.user_pk, "plugins.disable", "imagine", allowed=True)
    await first.close()

    second = await Storage.open(database_url)
    try:
        assert await second.identify(make_origin()) == ids
        history = await second.history(ids.conversation_pk, 10)
        assert [(m.role, m.content, m.token_count) for m in history] == [
            ("user", "hi", 1),
            ("assistant", "hello", 2),
        ]
        assert await second.get_system_prompt(ids.server_pk) == "Be terse."
        assert (await second.plugin_overrides(ids.server_pk))["imagine"].enabled is False
        assert await second.is_chat_channel(ids.channel_pk)
        assert [e.target for e in await second.audit_entries(ids.server_pk)] == ["imagine"]
    finally:
        await second.close()


async def test_sqlite_file_is_created_with_its_folder_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "atelier.db"
    storage = await Storage.open(f"sqlite+aiosqlite:///{path}")
    await storage.close()
    assert path.exists()

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
    finally:
        await engine.dispose()
    assert mode == "wal"


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:"])
async def test_in_memory_sqlite_works_for_throwaway_use(
    url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await Storage.open(url)
    try:
        ids = await storage.identify(make_origin())
        await storage.append_messages(ids.conversation_pk, [("user", "ephemeral", None)])
        assert len(await storage.history(ids.conversation_pk, 1)) == 1
    finally:
        await storage.close()


async def test_an_unreachable_database_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="upgrade failed"):
        await Storage.open("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")
