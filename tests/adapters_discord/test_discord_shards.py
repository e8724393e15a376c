"""Sharding: with ``shard_count=2`` each guild is served by the shard Discord assigns it.

discord.py launches shards one after another and, with Discord's default IDENTIFY
concurrency of 1, waits 5 s before each IDENTIFY after the first
(``Client.before_identify_hook``): a two-shard bot is ready about 5 s after it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from bot.adapters.discord import DiscordAdapter
from bot.app import App
from bot.config import Settings
from tests.adapters_discord.conftest import WAIT_S
from tests.discord_fake import Channel, FakeDiscord, Guild, Member
from tests.fakes import ScriptedChatModel

IDENTIFY_SPACING_S = 5.0  # discord.py's wait before every IDENTIFY but the first


@dataclass
class Sharded:
    """Two guilds, one per shard, and a two-shard bot that has not started yet."""

    fake: FakeDiscord
    app: App
    adapter: DiscordAdapter
    guilds: list[Guild]
    channels: list[Channel]
    members: list[Member]


def _shard(guild: Guild) -> int:
    """The shard (of 2) that Discord assigns a guild: ``(guild_id >> 22) % shard_count``."""
    return (guild.id >> 22) % 2


@pytest.fixture
async def sharded(settings: Settings, model: ScriptedChatModel) -> AsyncIterator[Sharded]:
    """Two guilds on shards 0 and 1 of 2, and an adapter with ``shard_count=2``."""
    async with FakeDiscord() as fake:
        # Consecutive guilds land on consecutive shards; list them shard 0 first.
        guilds = sorted([fake.add_guild("Lab"), fake.add_guild("Lab")], key=_shard)
        assert [_shard(g) for g in guilds] == [0, 1]
        channels = [g.add_channel("general") for g in guilds]
        members = [g.add_member(f"member{i}") for i, g in enumerate(guilds)]
        settings.discord.api_base = fake.api_base
        settings.discord.gateway_url = fake.gateway_url
        settings.discord.token = SecretStr(fake.token)
        settings.discord.shard_count = 2
        app = await App.start(settings, chat_model=model)
        adapter = DiscordAdapter(app, settings.discord, guild_ready_timeout=0.05)
        try:
            yield Sharded(fake, app, adapter, guilds, channels, members)
        finally:
            async with asyncio.timeout(WAIT_S):
                await adapter.close()
            await app.aclose()


async def test_each_guild_is_answered_through_its_own_shard(sharded: Sharded) -> None:
    fake, adapter = sharded.fake, sharded.adapter
    await adapter.start()
    async with asyncio.timeout(WAIT_S + IDENTIFY_SPACING_S):
        await adapter.wait_until_ready()

    for channel, member in zip(sharded.channels, sharded.members, strict=True):
        await fake.send_message(channel, member, "hello?", mentions_bot=True)
    for channel in sharded.channels:
        await fake.wait_for_call("POST", f"/channels/{channel.id}/messages")

    for shard_id, (guild, channel) in enumerate(zip(sharded.guilds, sharded.channels, strict=True)):
        assert [m["content"] for m in fake.bot_messages_in(channel)] == ["Hello from Discord."]
        known = adapter.client.get_guild(guild.id)
        assert known is not None and known.shard_id == shard_id
        (session,) = [s for s in fake.gateway.sessions if s.shard == (shard_id, 2)]
        heard = {m["channel_id"] for m in session.events("MESSAGE_CREATE")}
        assert str(channel.id) in heard  # the question reached the bot on this shard only
        assert str(sharded.channels[1 - shard_id].id) not in heard


async def test_closing_while_the_second_shard_waits_to_identify_returns_at_once(
    sharded: Sharded,
) -> None:
    await sharded.adapter.start()
    await sharded.fake.wait_for_identify(1)  # shard 0 is in; shard 1 waits its turn

    async with asyncio.timeout(2.0):
        await sharded.adapter.close()

    assert sharded.fake.identify_count() == 1
