"""An in-memory chat platform and its adapter: the proof that the adapter port is enough.

``ChatRoom`` plays the platform (servers, channels, people, their messages and files).
``ChatRoomAdapter`` is its client and uses nothing but the port: ``core.adapter``,
``core.events``, ``app.router`` (``answers``, ``handle``) and ``app.menus``. It never
touches storage, the plugin manager or anything private.
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.adapter import DELETE, FILES, POST, Limits
from core.events import (
    Addressing,
    Attachment,
    Buttons,
    CommandEvent,
    Error,
    Event,
    File,
    Image,
    MessageEvent,
    Origin,
    ReplyPart,
    Text,
    TextDelta,
)

if TYPE_CHECKING:
    from bot.app import App

PLATFORM = "chatroom"
BOT = "bot"
# Tool ``needs`` are checked against ``Actions.capabilities``: the room lists all it can do.
CAPABILITIES = frozenset({DELETE, POST, FILES})


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the room shows it (``server`` is "" in a direct chat)."""

    id: str
    server: str
    channel: str
    author: str
    text: str
    files: tuple[str, ...] = ()
    mentions_bot: bool = False
    reply_to: str = ""  # the id of the message this one answers
    by_admin: bool = False


class ChatRoom:
    """The platform: it keeps every message and hands new ones to its connected client."""

    def __init__(self, *servers: str) -> None:
        self.servers = list(servers)
        self.messages: list[Message] = []
        self.uploads: dict[tuple[str, str], bytes] = {}  # (message id, file name) → bytes
        self.menus: dict[str, list[str]] = {}  # server → its command menu, as people see it
        self.client: Callable[[Message], Awaitable[None]] | None = None
        self._ids = itertools.count(1)

    async def say(
        self,
        user: str,
        channel: str,
        text: str,
        *,
        server: str = "s1",
        mention: bool = False,
        reply_to_bot: bool = False,
        dm: bool = False,
        admin: bool = False,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> list[str]:
        """``user`` writes ``text``; returns what the bot then sent in that channel."""
        where = ("", f"@{user}") if dm else (server, channel)
        bot = [m.id for m in self.messages if m.author == BOT and (m.server, m.channel) == where]
        reply_to = bot[-1] if reply_to_bot else ""
        names = tuple(name for name, _ in files)
        said = self.send(
            *where, user, text, files=names, mentions_bot=mention, reply_to=reply_to, by_admin=admin
        )
        self.uploads.update({(said.id, name): data for name, data in files})
        if self.client is not None:
            await self.client(said)
        after = self.messages[self.messages.index(said) + 1 :]
        return [m.text for m in after if m.author == BOT and (m.server, m.channel) == where]

    def send(self, server: str, channel: str, author: str, text: str, **fields: Any) -> Message:
        """Post a message (the platform's API; ``fields`` as in ``Message``)."""
        message = Message(str(next(self._ids)), server, channel, author, text, **fields)
        self.messages.append(message)
        return message

    async def download(self, message_id: str, name: str) -> bytes:
        """The bytes of a file sent with a message."""
        return self.uploads[(message_id, name)]

    def find(self, message_id: str) -> Message | None:
        """The message with that id, unless it was deleted."""
        return next((m for m in self.messages if m.id == message_id), None)


Rendered = list[tuple[str, tuple[str, ...]]]  # messages to send: text, file names


class RoomActions:
    """What plugins may do in the room (``core.adapter.Actions``): delete and post."""

    capabilities = CAPABILITIES

    def __init__(self, room: ChatRoom, render: Callable[[Sequence[ReplyPart]], Rendered]):
        self.room, self.render = room, render

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        """Remove the message from the room."""
        self.room.messages = [m for m in self.room.messages if m.id != message_id]

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        """Refused: the room cannot time anyone out."""
        raise NotImplementedError("the chat room cannot time users out")

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        """Send ``parts`` to another channel of the same server."""
        for text, files in self.render(parts):
            self.room.send(origin.server_id, channel_id, BOT, text, files=files)


class ChatRoomAdapter:
    """Serves an App in a ``ChatRoom`` (a ``core.adapter.Adapter``)."""

    name = PLATFORM
    limits = Limits(message_chars=500, max_chunks=5)
    capabilities = CAPABILITIES

    def __init__(self, app: App, room: ChatRoom) -> None:
        self.app, self.room = app, room
        self.actions = RoomActions(room, self.render)
        self._closed = asyncio.Event()

    async def start(self) -> None:
        """Connect to the room, listen for menu changes and show each server's menu."""
        self.room.client = self._on_message
        self.app.menus.subscribe(PLATFORM, self._menu_changed)
        await self._menu_changed(None)

    async def stop(self) -> None:
        """Disconnect."""
        self.app.menus.unsubscribe(PLATFORM, self._menu_changed)
        self.room.client = None
        self._closed.set()

    async def wait_closed(self) -> None:
        """Return once stopped."""
        await self._closed.wait()

    async def _menu_changed(self, server_id: str | None) -> None:
        for server in self.room.servers if server_id is None else [server_id]:
            if server in self.room.servers:
                specs = await self.app.menus.commands_for(PLATFORM, server, server)
                self.room.menus[server] = [f"/{spec.name}" for spec in specs]

    async def _on_message(self, message: Message) -> None:
        event = self.event(message)
        if isinstance(event, MessageEvent) and not await self.app.router.answers(event):
            return
        parts: list[ReplyPart] = []
        try:
            async for part in self.app.router.handle(event, actions=self.actions):
                parts.append(part)
        except Exception as exc:  # the router answers errors itself; this is a last resort
            parts.append(Error(f"something went wrong ({type(exc).__name__})"))
        for text, files in self.render(parts):
            self.room.send(message.server, message.channel, BOT, text, files=files)

    def event(self, message: Message) -> Event:
        """The core's event for a message: a ``/command`` line, or a chat message."""
        replied = self.room.find(message.reply_to) if message.reply_to else None
        origin = Origin(
            PLATFORM,
            server_id=message.server or f"dm:{message.author}",  # a DM has no server of its own
            channel_id=message.channel,
            user_id=message.author,
            user_name=message.author,
            server_name=message.server,
            channel_name=message.channel,
            is_admin=message.by_admin,
        )
        files = tuple(self._attachment(message.id, name) for name in message.files)
        if message.text.startswith("/"):
            name, _, rest = message.text[1:].partition(" ")
            return CommandEvent(origin, name.lower() or "help", rest.strip(), attachments=files)
        facts = Addressing(
            direct=not message.server,
            mentions_bot=message.mentions_bot,
            replies_to_bot=replied is not None and replied.author == BOT,
        )
        return MessageEvent(origin, message.text, message.id, files, facts)

    def _attachment(self, message_id: str, name: str) -> Attachment:
        async def fetch() -> bytes:
            return await self.room.download(message_id, name)

        size = len(self.room.uploads.get((message_id, name), b""))  # what the platform reports
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Attachment(name, kind, size, fetch)

    def render(self, parts: Sequence[ReplyPart]) -> Rendered:
        """Reply parts as room messages, each within ``limits.message_chars``."""
        out: Rendered = []
        deltas = [p.text for p in parts if isinstance(p, TextDelta)]
        if deltas and not any(isinstance(p, Text) for p in parts):
            parts = [*parts, Text("".join(deltas))]  # a cut-off stream keeps its text
        for part in parts:
            if isinstance(part, Text | Error):
                text = part.text if isinstance(part, Text) else f"error: {part.message}"
                size, most = self.limits.message_chars, self.limits.max_chunks
                chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
                if len(chunks) > most:  # the room has no long-text files: the rest is cut
                    chunks = [*chunks[: most - 1], chunks[most - 1][:-1] + "…"]
                out += [(chunk, ()) for chunk in chunks]
            elif isinstance(part, Image):
                out.append((part.caption, (part.path.name,)))
            elif isinstance(part, File):
                out.append(("", (part.filename or part.path.name,)))
            elif isinstance(part, Buttons):
                out.append((" | ".join(f"[{b.label}]" for b in part.buttons), ()))
        return out
