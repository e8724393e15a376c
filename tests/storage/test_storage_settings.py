"""Stories: an admin changes a server's plugins, prompt and chat channels; all is audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

import pytest

from core.errors import StorageError
from core.events import Origin
from storage import Identity, PluginOverride, Storage

UNKNOWN_PK = 987_654


@pytest.fixture
async def here(storage: Storage, make_origin: Callable[..., Origin]) -> Identity:
    """Ada's identity in guild-1 #general."""
    return await storage.identify(make_origin())


async def test_plugin_overrides_are_set_and_reset_per_server(
    storage: Storage, here: Identity, make_origin: Callable[..., Origin]
) -> None:
    elsewhere = await storage.identify(make_origin(server="guild-2"))
    assert await storage.plugin_overrides(here.server_pk) == {}

    await storage.set_plugin_enabled(here.server_pk, "imagine", False)
    await storage.set_plugin_config(here.server_pk, "knowledge", {"top_k": 4, "tags": ["faq"]})
    await storage.set_plugin_enabled(here.server_pk, "knowledge", True)
    assert await storage.plugin_overrides(here.server_pk) == {
        "imagine": PluginOverride(enabled=False, config={}),
        "knowledge": PluginOverride(enabled=True, config={"top_k": 4, "tags": ["faq"]}),
    }

    # Back to the configured default; the plugin's config stays.
    await storage.set_plugin_enabled(here.server_pk, "knowledge", None)
    await storage.set_plugin_config(here.server_pk, "knowledge", {"top_k": 8})
    overrides = await storage.plugin_overrides(here.server_pk)
    assert overrides["knowledge"] == PluginOverride(enabled=None, config={"top_k": 8})
    assert await storage.plugin_overrides(elsewhere.server_pk) == {}


async def test_plugin_override_for_an_unknown_server_is_a_storage_error(storage: Storage) -> None:
    with pytest.raises(StorageError):
        await storage.set_plugin_enabled(UNKNOWN_PK, "imagine", True)


async def test_a_server_has_its_own_system_prompt_until_reset(
    storage: Storage, here: Identity
) -> None:
    assert await storage.get_system_prompt(here.server_pk) is None
    await storage.set_system_prompt(here.server_pk, "Answer like a pirate.")
    assert await storage.get_system_prompt(here.server_pk) == "Answer like a pirate."
    await storage.set_system_prompt(here.server_pk, None)
    assert await storage.get_system_prompt(here.server_pk) is None

    assert await storage.get_system_prompt(UNKNOWN_PK) is None
    with pytest.raises(StorageError):
        await storage.set_system_prompt(UNKNOWN_PK, "nobody home")


async def test_a_channel_becomes_a_chat_channel_and_back(storage: Storage, here: Identity) -> None:
    assert not await storage.is_chat_channel(here.channel_pk)
    await storage.set_chat_channel(here.channel_pk, True)
    assert await storage.is_chat_channel(here.channel_pk)
    await storage.set_chat_channel(here.channel_pk, False)
    assert not await storage.is_chat_channel(here.channel_pk)

    assert not await storage.is_chat_channel(UNKNOWN_PK)
    with pytest.raises(StorageError):
        await storage.set_chat_channel(UNKNOWN_PK, True)


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
