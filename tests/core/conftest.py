"""Fixtures for core stories: a real App on SQLite in a temp dir with a scripted model."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.config import LimitsSettings, PluginsSettings, Settings
from bot.plugins import Source
from core.events import CommandEvent, Event, MessageEvent, Origin, ReplyPart, Text
from tests.fakes import ScriptedChatModel, script


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with state in a temp dir and generous rate limits."""
    return Settings(
        data_dir=tmp_path / "data",
        limits={"user_burst": 1000, "server_burst": 1000},
        plugins={"disable_entry_points": True},
    )


@pytest.fixture
def model() -> ScriptedChatModel:
    """Answers "hello there" to everything unless a test scripts otherwise."""
    return ScriptedChatModel(messages=script("hello there", repeat=True))


@pytest.fixture
async def app(settings: Settings, model: ScriptedChatModel) -> AsyncIterator[App]:
    """A started bot."""
    started = await App.start(settings, chat_model=model)
    try:
        yield started
    finally:
        await started.aclose()


@pytest.fixture
async def echo_app(app: App) -> App:
    """The app with the sample ``echo`` plugin loaded as if discovered."""
    app.plugins.sources["echo"] = Source("echo", "tests.core.sample_plugin")
    await app.plugins.load("echo")
    return app


def isolated_settings(data_dir: Path, **plugins: Any) -> Settings:
    """Default settings with state under ``data_dir``, no rate limits in the way, only the
    built-in plugins (``plugins``: more ``[plugins]`` fields) and no ATELIER_* from outside."""
    for name in list(os.environ):
        if name.upper().startswith("ATELIER_"):
            del os.environ[name]
    return Settings(
        data_dir=data_dir,
        limits=LimitsSettings(user_burst=1000, server_burst=1000),
        plugins=PluginsSettings(disable_entry_points=True, **plugins),
    )


def origin(server: str = "s1", user: str = "u1", *, admin: bool = False, **kw: Any) -> Origin:
    """A console-like origin."""
    return Origin(
        "console", server, kw.pop("channel", "c1"), user, user_name=user, is_admin=admin, **kw
    )


async def collect(app: App, event: Event) -> list[ReplyPart]:
    """Every part the router sends for ``event``."""
    return [part async for part in app.router.handle(event)]


Say = Callable[..., Any]


async def say(app: App, text: str, **kw: Any) -> str:
    """Send a line as the console does and return the final text (or error) of the reply."""
    who = origin(**kw)
    if text.startswith("/"):
        name, _, rest = text[1:].partition(" ")
        event: Event = CommandEvent(who, name, rest)
    else:
        event = MessageEvent(who, text)
    parts = await collect(app, event)
    return "\n".join(
        p.text if isinstance(p, Text) else f"error: {p.message}"
        for p in parts
        if isinstance(p, Text) or hasattr(p, "message")
    )
