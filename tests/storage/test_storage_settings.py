"""Stories: an admin changes a server's plugins, prompt and chat channels; all is audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

import pytest

from core.errors import StorageError
from core.events import Origin
from storage import Identity, Storage

UNKNOWN_PK = 987_654


@pytest.fixture
async def here(storage: Storage, make_origin: Callable[..., Origin]) -> Identity:
    """Ada's identity in guild-1 #general."""
    return await storage.identify(make_origin())


async def test_values_are_set_replaced_and_reset_per_scope_and_target(
    storage: Storage, here: Identity, make_origin: Callable[..., Origin]
) -> None:
    elsewhere = await storage.identify(make_origin(server="guild-2"))
    values = storage.settings
    assert await values.values("server", here.server_pk) == {}

    await values.set("server", here.server_pk, "imagine", "enabled", False)
    await values.set("server", here.server_pk, "knowledge", "tags", ["faq", "rules"])
    await values.set("server", here.server_pk, "knowledge", "top_k", 4)
    await values.set("server", here.server_pk, "knowledge", "top_k", 8)  # replaced
    await values.set("channel", here.channel_pk, "core", "chat", True)
    await values.set("user", here.user_pk, "knowledge", "top_k", 2)

    assert await values.values("server", here.server_pk) == {
        ("imagine", "enabled"): False,
        ("knowledge", "tags"): ["faq", "rules"],
        ("knowledge", "top_k"): 8,
    }
    assert await values.values("channel", here.channel_pk) == {("core", "chat"): True}
    assert await values.values("user", here.user_pk) == {("knowledge", "top_k"): 2}
    assert await values.values("server", elsewhere.server_pk) == {}

    await values.set("server", here.server_pk, "imagine", "enabled", None)  # the default again
    assert ("imagine", "enabled") not in await values.values("server", here.server_pk)


async def test_a_value_for_an_unknown_target_is_a_storage_error(storage: Storage) -> None:
    for scope in ("server", "channel", "user"):
        with pytest.raises(StorageError, match=f"no {scope} with pk {UNKNOWN_PK}"):
            await storage.settings.set(scope, UNKNOWN_PK, "core", "x", 1)  # type: ignore[arg-type]


async def test_a_chat_channel_is_found_by_the_platforms_ids_without_creating_rows(
    storage: Storage, here: Identity
) -> None:
    values = storage.settings
    assert not await values.chat_channel_at("discord", "guild-1", "general")
    await values.set("channel", here.channel_pk, "core", "chat", True)
    assert await values.chat_channel_at("discord", "guild-1", "general")
    assert not await values.chat_channel_at("discord", "guild-1", "random")
    assert not await values.chat_channel_at("telegram", "guild-1", "general")
    assert await storage.server_ref(here.server_pk) == ("discord", "guild-1")


async def test_audit_entries_come_newest_first_per_server(
    storage: Storage, here: Identity, make_origin: Callable[..., Origin]
) -> None:
    elsewhere = await storage.identify(make_origin(server="guild-2"))
    await storage.audit(here.server_pk, here.user_pk, "plugins.enable", "imagine", allowed=True)
    await storage.audit(
        here.server_pk,
        here.user_pk,
        "plugins.disable",
        "moderation",
        allowed=False,
        detail={"reason": "not an admin"},
    )
    await storage.audit(here.server_pk, None, "prompt.set", "server", allowed=True)
    await storage.audit(elsewhere.server_pk, None, "plugins.enable", "code", allowed=True)

    entries = await storage.audit_entries(here.server_pk)
    assert [(e.action, e.target, e.allowed) for e in entries] == [
        ("prompt.set", "server", True),
        ("plugins.disable", "moderation", False),
        ("plugins.enable", "imagine", True),
    ]
    assert entries[0].user_pk is None
    assert entries[1].detail == {"reason": "not an admin"}
    assert entries[2].detail == {}
    assert all(e.server_pk == here.server_pk for e in entries)
    assert all(e.created_at.tzinfo is not None for e in entries)
    assert entries[0].created_at >= entries[2].created_at
    assert entries[0].created_at.utcoffset() == UTC.utcoffset(None)

    assert [e.target for e in await storage.audit_entries(here.server_pk, limit=1)] == ["server"]
