"""Fixtures for the moderation stories: a real App (SQLite in a temp dir, the built-in
plugins with moderation on, the real classifier) and a recording ``Actions`` port.

``Recorder`` stands in for a platform's actions the way the chat room's do: it is the
port itself (``core.adapter.Actions``), not a patched internal; the Discord and Telegram
adapters' own actions are tested against their fake servers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import App
from bot.config import Settings
from core.adapter import BUTTONS, DELETE, POST, TIMEOUT
from core.events import (
    CommandEvent,
    Error,
    Event,
    MessageEvent,
    Origin,
    ReplyPart,
    Text,
)
from tests.core.conftest import isolated_settings, origin
from tests.fakes import ScriptedChatModel, script


@dataclass
class Recorder:
    """The platform's actions, recorded: ``("delete", channel, message)``,
    ``("timeout", user, seconds)``, ``("post", channel, text)``."""

    capabilities: frozenset[str] = frozenset({DELETE, TIMEOUT, POST, BUTTONS})
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    posted: list[ReplyPart] = field(default_factory=list)

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        self.calls.append(("delete", origin.channel_id, message_id))

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        self.calls.append(("timeout", origin.user_id, seconds))

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        self.posted.extend(parts)
        text = " ".join(p.text for p in parts if isinstance(p, Text))
        self.calls.append(("post", channel_id, text))


def moderation_settings(data_dir: Path, **config: Any) -> Settings:
    """Default settings with moderation on everywhere and no ATELIER_* from outside."""
    return isolated_settings(data_dir, enabled={"moderation": True}, config={"moderation": config})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    """One started bot for a module's stories (each story uses servers of its own)."""
    # A wide batching window, so concurrent checks meet even on a loaded machine.
    settings = moderation_settings(tmp_path_factory.mktemp("mod") / "data", batch_window_ms=25)
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model) as started:
        yield started


async def send(
    app: App,
    text: str,
    *,
    server: str,
    user: str = "member",
    admin: bool = False,
    actions: Recorder | None = None,
    message_id: str = "m1",
    **kw: Any,
) -> list[ReplyPart]:
    """Every part of the reply to a message (``/name ...`` is a command)."""
    who = origin(server=server, user=user, admin=admin, **kw)
    event: Event
    if text.startswith("/"):
        name, _, rest = text[1:].partition(" ")
        event = CommandEvent(who, name, rest)
    else:
        event = MessageEvent(who, text, message_id=message_id)
    return [part async for part in app.router.handle(event, actions=actions)]


def shown(parts: list[ReplyPart]) -> str:
    """What the user sees in the end: the final text and error lines."""
    lines = []
    for part in parts:
        if isinstance(part, Text):
            lines.append(part.text)
        elif isinstance(part, Error):
            lines.append(f"error: {part.message}")
    return "\n".join(lines)


async def admin(app: App, line: str, *, server: str, **kw: Any) -> str:
    """An admin's command, and what they see."""
    return shown(await send(app, line, server=server, user="boss", admin=True, **kw))
