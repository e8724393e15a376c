"""Fixtures for the chat-room stories: a real App (SQLite in a temp dir, the built-in
plugins, a scripted chat model that can pause between streamed words) served by a
started ``ChatRoomAdapter``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.config import LimitsSettings, PluginsSettings, Settings
from bot.plugins import Source
from tests.chatroom.adapter import ChatRoom, ChatRoomAdapter
from tests.fakes import PacedChatModel, ScriptedChatModel, script

ANSWER = "hello there"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Default settings (no ATELIER_* from outside), state under ``tmp_path``, no rate limits
    in the way, and only the built-in plugins."""
    for name in list(os.environ):
        if name.upper().startswith("ATELIER_"):
            monkeypatch.delenv(name)
    return Settings(
        data_dir=tmp_path / "data",
        limits=LimitsSettings(user_burst=1000, server_burst=1000),
        plugins=PluginsSettings(disable_entry_points=True),
    )


@pytest.fixture
def model() -> PacedChatModel:
    """Answers ``ANSWER`` to everything, at once, unless a test scripts otherwise."""
    return PacedChatModel(messages=script(ANSWER, repeat=True))


@pytest.fixture
async def app(settings: Settings, model: ScriptedChatModel) -> AsyncIterator[App]:
    """A started bot."""
    async with await App.start(settings, chat_model=model) as started:
        yield started


@pytest.fixture
async def echo(app: App) -> App:
    """The app with the core stories' sample ``echo`` plugin loaded (``/slow`` shows
    progress, then its result; every final text gets `` [echo]`` appended)."""
    app.plugins.sources["echo"] = Source("echo", "tests.core.sample_plugin")
    await app.plugins.load("echo")
    return app


@pytest.fixture
async def adapter(app: App) -> AsyncIterator[ChatRoomAdapter]:
    """The adapter, started in a room with two servers, ``s1`` and ``s2``."""
    served = ChatRoomAdapter(app, ChatRoom("s1", "s2"))
    await served.start()
    try:
        yield served
    finally:
        await served.stop()
        await served.wait_closed()


@pytest.fixture
def room(adapter: ChatRoomAdapter) -> ChatRoom:
    """The room the bot serves (people talk here; the bot's messages appear here)."""
    return adapter.room
