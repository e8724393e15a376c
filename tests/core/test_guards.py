"""Stories of the guards: floods are refused at once, once, and no table grows without bound."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import App
from bot.config import Settings
from bot.plugins import Source
from core.cache import DEFAULT_MAX_ENTRIES, LRUDict, TTLCache
from core.events import CommandEvent, Error, MessageEvent, Origin
from storage._history import DEFAULT_MAX_CONVERSATIONS
from storage.repository import IDENTITY_CACHE_SIZE
from tests.core.conftest import collect, origin, say
from tests.fakes import ScriptedChatModel


async def test_a_flood_is_refused_without_waiting_for_the_turn_in_progress(
    settings: Settings, model: ScriptedChatModel
) -> None:
    settings.limits.user_burst = 2
    settings.limits.user_per_second = 0.01
    async with await App.start(settings, chat_model=model) as app:
        app.plugins.sources["echo"] = Source("echo", "tests.core.sample_plugin")
        await app.plugins.load("echo")
        slow = asyncio.create_task(say(app, "/slow 10"))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(say(app, "/echo behind the slow one"))  # last token
        await asyncio.sleep(0.05)
        # Waiting for the lock would take the slow turn's 10 s; refusing takes a moment.
        parts = await asyncio.wait_for(collect(app, MessageEvent(origin(), "flood")), 5.0)
        assert isinstance(parts[0], Error) and "Slow down" in parts[0].message
        assert not slow.done() and not queued.done()
        slow.cancel()
        queued.cancel()


async def test_command_options_count_against_the_message_limit(app: App) -> None:
    limit = app.services.settings.limits.max_message_chars
    event = CommandEvent(origin(), "calc", options={"expression": "1+" * (limit // 2 + 1)})
    parts = await collect(app, event)
    assert parts == [
        Error(f"Your message is {2 * (limit // 2 + 1)} characters long; the limit is {limit}.")
    ]


def test_an_lru_dict_keeps_its_newest_keys() -> None:
    table: LRUDict[int, int] = LRUDict(3)
    for key in range(10):
        table[key] = key
        _ = table.get(0)  # use keeps a key alive
    assert set(table) == {0, 8, 9}


async def test_a_ttl_cache_is_capped() -> None:
    cache: TTLCache[int, int] = TTLCache(60.0, max_entries=100)

    async def load(value: int) -> int:
        return value

    for key in range(10_000):
        await cache.get(key, lambda key=key: load(key))  # type: ignore[misc]
    assert len(cache) == 100


@pytest.mark.timeout(300)
async def test_ten_thousand_dm_users_leave_every_table_bounded(
    settings: Settings, model: ScriptedChatModel
) -> None:
    """Each DM is a server of its own: every per-server/-user table sees 10,000 new keys."""
    async with await App.start(settings, chat_model=model) as app:

        async def dm(i: int) -> None:
            who = Origin("discord", f"dm-{i}", f"dm-{i}", f"user-{i}", user_name=f"u{i}")
            parts = await collect(app, MessageEvent(who, "hi"))
            assert parts[-1].text == "hello there"  # type: ignore[union-attr]

        for start in range(0, 10_000, 250):
            await asyncio.gather(*(dm(i) for i in range(start, start + 250)))
        router, storage = app.router, app.services.storage
        assert len(app.plugins.scoped) <= DEFAULT_MAX_ENTRIES
        assert len(app.services.server_state) <= DEFAULT_MAX_ENTRIES
        assert len(app.plugins._configs) <= 1024
        assert len(storage._identities) <= IDENTITY_CACHE_SIZE
        assert len(storage._history) <= DEFAULT_MAX_CONVERSATIONS
        assert len(router._users) <= router._users._buckets.max_size
        assert len(router._servers) <= router._servers._buckets.max_size
        assert len(router._notices) == 0
        assert router._locks == {}
