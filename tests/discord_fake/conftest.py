"""Fixtures for the fake Discord's own tests: a small world and a raw discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest

from tests.discord_fake import Channel, FakeDiscord, Guild, Member, discord_pointed_at


@dataclass
class Lab:
    """What the ``fake`` fixture built: one guild, a channel, a thread, two members."""

    fake: FakeDiscord
    guild: Guild
    general: Channel
    thread: Channel
    admin: Member
    member: Member


@dataclass
class RawClient:
    """A plain ``discord.Client`` whose events land in queues, one per event name."""

    client: discord.Client
    queues: dict[str, asyncio.Queue[Any]] = field(default_factory=dict)

    def queue(self, event: str) -> asyncio.Queue[Any]:
        """The queue that ``on_<event>`` puts its first argument into."""
        return self.queues.setdefault(event, asyncio.Queue())

    async def next(self, event: str, within: float = 5.0) -> Any:
        """The next ``on_<event>`` argument, waiting at most ``within`` seconds."""
        return await asyncio.wait_for(self.queue(event).get(), within)

    async def next_message(self, *, from_bot: bool = False, within: float = 5.0) -> Any:
        """The next message from a user (or, with ``from_bot``, from the bot itself)."""
        async with asyncio.timeout(within):
            while True:
                message = await self.next("message", within)
                if message.author.bot == from_bot:
                    return message


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    """A started fake with guild "Atelier Lab": #general, a thread, an admin and a member."""
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Atelier Lab")
        general = guild.add_channel("general")
        thread = guild.add_thread(general, "ideas")
        yield Lab(
            fake,
            guild,
            general,
            thread,
            guild.add_member("alice", admin=True),
            guild.add_member("bob"),
        )


@pytest.fixture
async def raw(lab: Lab) -> AsyncIterator[RawClient]:
    """A logged-in, ready ``discord.Client`` (members + message content intents)."""
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    with discord_pointed_at(lab.fake):
        client = discord.Client(intents=intents, guild_ready_timeout=0.05)
        raw = RawClient(client)
        for event in ("ready", "message", "interaction", "resumed", "guild_remove"):
            setattr(client, f"on_{event}", _putter(raw.queue(event)))
        task = asyncio.create_task(client.start(lab.fake.token))
        try:
            await raw.next("ready")
            yield raw
        finally:
            await client.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)


def _putter(queue: asyncio.Queue[Any]) -> Any:
    async def put(*args: Any) -> None:
        queue.put_nowait(args[0] if args else None)

    return put
