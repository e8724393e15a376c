"""Stories: the schema comes from the Alembic migrations, and data outlives the process."""

from __future__ import annotations

import json
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
from tests.storage.conftest import run_on

MIGRATIONS = Path(__file__).resolve().parents[2] / "storage" / "migrations"

HEAD = sorted(p.stem.split("_")[0] for p in (MIGRATIONS / "versions").glob("0*.py"))[-1]
"""The newest revision (revision ids are numbered file prefixes: 0001, 0002, ...)."""

TABLES = {
    "servers",
    "channels",
    "users",
    "settings",
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
    await first.settings.set("server", ids.server_pk, "core", "system_prompt", "Be terse.")
    await first.settings.set("server", ids.server_pk, "imagine", "enabled", False)
    await first.settings.set("channel", ids.channel_pk, "core", "chat", True)
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
        assert await second.settings.values("server", ids.server_pk) == {
            ("core", "system_prompt"): "Be terse.",
            ("imagine", "enabled"): False,
        }
        assert await second.settings.values("channel", ids.channel_pk) == {("core", "chat"): True}
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


def _migrate(conn: Connection, target: str) -> None:
    from alembic import command

    from storage._engine import alembic_config

    if target == "head" or not inspect(conn).has_table("alembic_version"):
        command.upgrade(alembic_config(conn), target)
    elif target > str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar()):
        command.upgrade(alembic_config(conn), target)
    else:
        command.downgrade(alembic_config(conn), target)


async def test_values_from_before_scoped_settings_move_over_and_back(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await Storage.open(database_url, migrate=False)
    await run_on(database_url, lambda c: _migrate(c, "0003"))
    ids = await storage.identify(make_origin())
    await storage.close()
    old = [
        ("UPDATE servers SET system_prompt = 'Be terse.' WHERE id = :s", {}),
        ("UPDATE channels SET is_chat_channel = true WHERE id = :c", {}),
        (
            "INSERT INTO plugin_settings (server_id, plugin, enabled, config, updated_at)"
            " VALUES (:s, 'calculator', false, :config, CURRENT_TIMESTAMP)",
            {"config": '{"decimals": 3}'},
        ),
    ]

    def fill(conn: Connection) -> None:
        for sql, extra in old:
            conn.execute(text(sql), {"s": ids.server_pk, "c": ids.channel_pk, **extra})

    await run_on(database_url, fill)
    await run_on(database_url, lambda c: _migrate(c, "head"))

    storage = await Storage.open(database_url)
    try:
        assert await storage.settings.values("server", ids.server_pk) == {
            ("core", "system_prompt"): "Be terse.",
            ("calculator", "enabled"): False,
            ("calculator", "decimals"): 3,
        }
        assert await storage.settings.chat_channel_at("discord", "guild-1", "general")
    finally:
        await storage.close()

    await run_on(database_url, lambda c: _migrate(c, "0003"))

    def back(conn: Connection) -> tuple[object, ...]:
        prompt = conn.execute(text("SELECT system_prompt FROM servers")).scalar()
        chat = conn.execute(text("SELECT is_chat_channel FROM channels")).scalar()
        row = conn.execute(text("SELECT plugin, enabled, config FROM plugin_settings")).one()
        config = row[2] if isinstance(row[2], dict) else json.loads(row[2])
        return prompt, bool(chat), row[0], bool(row[1]), config

    assert await run_on(database_url, back) == (
        "Be terse.",
        True,
        "calculator",
        False,
        {"decimals": 3},
    )
