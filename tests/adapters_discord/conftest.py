"""Fixtures for the Discord stories: the fake Discord, a real App, the real adapter.

``bot`` starts a ``FakeDiscord`` on loopback with one guild (#general, a thread, an admin
and a member), an App whose chat model is scripted, the ``poll`` test plugin, and a
``DiscordAdapter`` pointed at the fake; it is ready and has synced the guild's commands.
Stories that draw override ``image_backend`` with the fake image back end.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

with warnings.catch_warnings():
    # discord.py imports the stdlib's audioop (voice), deprecated since Python 3.11.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401

from bot.adapters.discord import DiscordAdapter
from bot.app import App
from bot.config import DiscordSettings, LimitsSettings, PluginsSettings, Settings
from bot.plugins import Source
from tests.discord_fake import Channel, FakeDiscord, Guild, Member
from tests.fakes import ScriptedChatModel, script
from workers.api import ImageBackend

WAIT_S = 5.0


@dataclass
class Bot:
    """Everything a story needs: the fake world, the app, the adapter and the model."""

    fake: FakeDiscord
    app: App
    adapter: DiscordAdapter
    model: ScriptedChatModel
    guild: Guild
    general: Channel
    thread: Channel
    admin: Member
    member: Member

    async def until(self, check: Callable[[], Any], within: float = WAIT_S) -> Any:
        """Wait until ``check()`` is truthy (re-checked after every REST call); return it."""
        changed = self.fake.rest.changed
        async with asyncio.timeout(within), changed:
            await changed.wait_for(check)
        return check()

    def answers_in(self, channel: Channel) -> list[dict[str, Any]]:
        """The bot's messages in ``channel`` (current state), oldest first."""
        return self.fake.bot_messages_in(channel)

    def command_names(self) -> set[str]:
        """Names of the slash commands now registered in the guild."""
        return {command["name"] for command in self.fake.commands(self.guild)}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Generous rate limits, fast edits and syncs (the endpoints come with ``bot``)."""
    return Settings(
        data_dir=tmp_path / "data",
        limits=LimitsSettings(user_burst=1000, server_burst=1000),
        plugins=PluginsSettings(disable_entry_points=True),
        discord=DiscordSettings(edit_interval_s=0.2, sync_debounce_s=0.05),
    )


@pytest.fixture
def model() -> ScriptedChatModel:
    """Answers "Hello from Discord." unless a story scripts otherwise."""
    return ScriptedChatModel(messages=script("Hello from Discord.", repeat=True))


@pytest.fixture
def image_backend() -> ImageBackend | None:
    """The image back end the app gets (None: the configured one); image stories bring a fake."""
    return None


@pytest.fixture
async def bot(
    settings: Settings, model: ScriptedChatModel, image_backend: ImageBackend | None
) -> AsyncIterator[Bot]:
    """The whole bot on a fake Discord, connected and with the guild's commands synced."""
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Atelier Lab")
        general = guild.add_channel("general")
        thread = guild.add_thread(general, "ideas")
        admin, member = guild.add_member("alice", admin=True), guild.add_member("bob")
        settings.discord.api_base = fake.api_base
        settings.discord.gateway_url = fake.gateway_url
        settings.discord.token = SecretStr(fake.token)
        app = await App.start(settings, chat_model=model, image_backend=image_backend)
        await _load_poll_plugin(app)
        adapter = DiscordAdapter(app, settings.discord, guild_ready_timeout=0.05)
        try:
            await adapter.start()
            async with asyncio.timeout(WAIT_S):
                await adapter.wait_until_ready()
            story = Bot(fake, app, adapter, model, guild, general, thread, admin, member)
            await story.until(lambda: "ask" in story.command_names())
            yield story
        finally:
            await adapter.close()
            await app.aclose()


async def _load_poll_plugin(app: App) -> None:
    manager = app.plugins
    manager.sources["poll"] = Source("poll", "tests.adapters_discord.buttons_plugin")
    await manager.load("poll")
    module = sys.modules["tests.adapters_discord.buttons_plugin"]
    module.presses.clear()
    module.pictures.clear()
