"""Stories: who and where a message came from becomes stable keys, even under races."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.events import Origin
from storage import Identity, Storage


async def test_the_same_origin_always_gets_the_same_keys(
    storage: Storage, database_url: str, make_origin: Callable[..., Origin]
) -> None:
    first = await storage.identify(make_origin())
    assert await storage.identify(make_origin()) == first

    # Another process (empty cache) sees the very same rows.
    other = await Storage.open(database_url, migrate=False)
    try:
        assert await other.identify(make_origin()) == first
    finally:
        await other.close()


async def test_servers_channels_users_and_conversations_are_told_apart(
    storage: Storage, make_origin: Callable[..., Origin]
) -> None:
    ada = await storage.identify(make_origin(user="ada"))
    bob = await storage.identify(make_origin(user="bob"))
    ada_elsewhere = await storage.identify(make_origin(channel="random", user="ada"))
    ada_other_server = await storage.identify(make_origin(server="guild-2", user="ada"))
    ada_on_telegram = await storage.identify(make_origin(platform="telegram", user="ada"))

    # Two people in one channel: same server and channel, separate conversations.
    assert (bob.server_pk, bob.channel_pk) == (ada.server_pk, ada.channel_pk)
    assert bob.user_pk != ada.user_pk
    assert bob.conversation_pk != ada.conversation_pk
    # One person in two channels of one server.
    assert ada_elsewhere.server_pk == ada.server_pk
    assert ada_elsewhere.channel_pk != ada.channel_pk
    assert ada_elsewhere.conversation_pk != ada.conversation_pk
    # The same person and channel id in another server: a different channel row.
    assert ada_other_server.user_pk == ada.user_pk
    assert ada_other_server.server_pk != ada.server_pk
    assert ada_other_server.channel_pk != ada.channel_pk
    # The same external ids on another platform are other people and places.
    assert ada_on_telegram.server_pk != ada.server_pk
    assert ada_on_telegram.user_pk != ada.user_pk
    conversations = {
        i.conversation_pk for i in (ada, bob, ada_elsewhere, ada_other_server, ada_on_telegram)
    }
    assert len(conversations) == 5


async def test_concurrent_first_sightings_agree_across_processes(
    storage: Storage, database_url: str, make_origin: Callable[..., Origin]
) -> None:
    other = await Storage.open(database_url, migrate=False)
    try:
        newcomers = [
            make_origin(server="guild-9", channel=f"c{i % 3}", user="eve") for i in range(6)
        ]
        calls = [s.identify(o) for o in newcomers for s in (storage, other) for _ in range(5)]
        results: list[Identity] = await asyncio.gather(*calls)
    finally:
        await other.close()

    by_channel: dict[str, set[Identity]] = {}
    for origin, identity in zip([o for o in newcomers for _ in range(10)], results, strict=True):
        by_channel.setdefault(origin.channel_id, set()).add(identity)
    assert all(len(found) == 1 for found in by_channel.values())
    assert len({i.server_pk for found in by_channel.values() for i in found}) == 1
    assert len({i.conversation_pk for found in by_channel.values() for i in found}) == 3
