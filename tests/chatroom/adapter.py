"""An in-memory chat platform and its adapter: the proof that the adapter port is enough.

``ChatRoom`` plays the platform (servers, channels, people, their messages and files;
messages can be edited and deleted, and the bot's can carry files and buttons).
``ChatRoomAdapter`` is its client and uses nothing but the port: ``core.adapter``,
``core.events``, ``app.router`` (``answers``, ``handle``) and ``app.menus``, plus the
streaming renderer every adapter shares (``bot.render``), reached through ``RoomTarget``.
It never touches storage, the plugin manager or anything private.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import mimetypes
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.render import KEEP, Keep, Reply, Upload, WriteBudget
from core.adapter import DELETE, EDITS, FILES, POST, Limits
from core.events import (
    Addressing,
    Attachment,
    Buttons,
    CommandEvent,
    Error,
    Event,
    MessageEvent,
    Origin,
    ReplyPart,
)

if TYPE_CHECKING:
    from bot.app import App

PLATFORM = "chatroom"
BOT = "bot"
MESSAGE_CHARS = 500  # the room refuses longer messages
# Tool ``needs`` are checked against ``Actions.capabilities``: the room lists all it can do
# (it shows buttons' labels, but nobody can press them: no BUTTONS).
CAPABILITIES = frozenset({DELETE, EDITS, POST, FILES})
# The room takes writes quickly: the shared budget still throttles, in a short window.
WRITES_PER_WINDOW = 5
WRITE_WINDOW_S = 0.1

Write = tuple[str, str, str]  # ("post" | "edit" | "delete", message id, its text after)


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the room shows it (``server`` is "" in a direct chat)."""

    id: str
    server: str
    channel: str
    author: str
    text: str
    files: tuple[str, ...] = ()  # file names; their bytes are in ``ChatRoom.uploads``
    mentions_bot: bool = False
    reply_to: str = ""  # the id of the message this one answers
    by_admin: bool = False
    buttons: tuple[str, ...] = ()  # the labels of its buttons


class ChatRoom:
    """The platform: it keeps every message and hands new ones to its connected client.

    Like a real platform it refuses a message longer than ``message_chars`` or with
    nothing in it (no text, file or button), when posted and when edited.
    """

    def __init__(self, *servers: str, message_chars: int = MESSAGE_CHARS) -> None:
        self.servers = list(servers)
        self.message_chars = message_chars
        self.messages: list[Message] = []
        self.uploads: dict[tuple[str, str], bytes] = {}  # (message id, file name) → bytes
        self.menus: dict[str, list[str]] = {}  # server → its command menu, as people see it
        self.edits: Counter[str] = Counter()  # message id → how often it was edited
        self.writes: list[Write] = []  # every post, edit and delete, in order
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
        """``user`` writes ``text``; returns what the bot then sent in that channel (the
        final texts, after any edits; the client renders the whole reply first)."""
        where = ("", f"@{user}") if dm else (server, channel)
        bot = [m.id for m in self.messages if m.author == BOT and (m.server, m.channel) == where]
        reply_to = bot[-1] if reply_to_bot else ""
        said = self.send(
            *where,
            user,
            text,
            files=files,
            mentions_bot=mention,
            reply_to=reply_to,
            by_admin=admin,
        )
        if self.client is not None:
            await self.client(said)
        after = self.messages[self.messages.index(said) + 1 :]
        return [m.text for m in after if m.author == BOT and (m.server, m.channel) == where]

    def send(
        self,
        server: str,
        channel: str,
        author: str,
        text: str,
        *,
        files: Sequence[tuple[str, bytes]] = (),
        **fields: Any,
    ) -> Message:
        """Post a message with ``files`` (name, bytes) (the platform's API; ``fields`` as
        in ``Message``)."""
        names = tuple(name for name, _ in files)
        message = Message(str(next(self._ids)), server, channel, author, text, names, **fields)
        self._check(message)
        self.messages.append(message)
        self.uploads.update({(message.id, name): data for name, data in files})
        self.writes.append(("post", message.id, text))
        return message

    def edit(
        self,
        message_id: str,
        *,
        text: str | None = None,
        files: Sequence[tuple[str, bytes]] | None = None,
        buttons: tuple[str, ...] | None = None,
    ) -> Message:
        """Change a message in place (same id, same position); None leaves a field as is,
        ``files`` replaces all of the message's files."""
        index = self._index(message_id)
        old = self.messages[index]
        new = dataclasses.replace(
            old,
            text=old.text if text is None else text,
            files=old.files if files is None else tuple(name for name, _ in files),
            buttons=old.buttons if buttons is None else buttons,
        )
        self._check(new)
        if files is not None:
            self._forget_files(old)
            self.uploads.update({(message_id, name): data for name, data in files})
        self.messages[index] = new
        self.edits[message_id] += 1
        self.writes.append(("edit", message_id, new.text))
        return new

    def delete(self, message_id: str) -> None:
        """Remove a message and its files."""
        old = self.messages.pop(self._index(message_id))
        self._forget_files(old)
        self.writes.append(("delete", message_id, old.text))

    async def download(self, message_id: str, name: str) -> bytes:
        """The bytes of a file sent with a message."""
        return self.uploads[(message_id, name)]

    def find(self, message_id: str) -> Message | None:
        """The message with that id, unless it was deleted."""
        return next((m for m in self.messages if m.id == message_id), None)

    def _index(self, message_id: str) -> int:
        for index, message in enumerate(self.messages):
            if message.id == message_id:
                return index
        raise LookupError(f"no message {message_id} in the room")

    def _check(self, message: Message) -> None:
        if len(message.text) > self.message_chars:
            raise ValueError(f"message of {len(message.text)} characters refused")
        if not message.text.strip() and not message.files and not message.buttons:
            raise ValueError("empty message refused")

    def _forget_files(self, message: Message) -> None:
        for name in message.files:
            self.uploads.pop((message.id, name), None)


class RoomTarget:
    """Where one reply's messages go in the room (``bot.render.Target[Message]``)."""

    def __init__(self, room: ChatRoom, server: str, channel: str, upload_limit: int) -> None:
        self.room, self.server, self.channel = room, server, channel
        self.key: Hashable = (server, channel)
        self.upload_limit = upload_limit

    async def post(
        self, content: str, *, files: Sequence[Upload] = (), buttons: Buttons | None = None
    ) -> Message:
        """Post one message of the reply as the bot."""
        return self.room.send(
            self.server,
            self.channel,
            BOT,
            content,
            files=[_file(upload) for upload in files],
            buttons=_labels(buttons),
        )

    async def edit(
        self,
        message: Message,
        *,
        content: str | Keep | None = KEEP,
        files: Sequence[Upload] | None = None,
        buttons: Buttons | Keep | None = KEEP,
    ) -> None:
        """Edit a sent message: content (None: none), files (None: keep), buttons (None:
        remove them)."""
        self.room.edit(
            message.id,
            text=None if isinstance(content, Keep) else content or "",
            files=None if files is None else [_file(upload) for upload in files],
            buttons=None if isinstance(buttons, Keep) else _labels(buttons),
        )

    async def delete(self, message: Message) -> None:
        """Delete a sent message."""
        self.room.delete(message.id)

    async def error(self, message: str, placeholder: Message | None) -> None:
        """``error: …``, in the placeholder if there is one (its buttons go)."""
        text = f"error: {message}"[: self.room.message_chars]
        if placeholder is not None:
            self.room.edit(placeholder.id, text=text, buttons=())
        else:
            await self.post(text)

    async def empty(self) -> None:
        """Nothing to do: the message simply got no answer."""


def _labels(buttons: Buttons | None) -> tuple[str, ...]:
    return () if buttons is None else tuple(button.label for button in buttons.buttons)


def _file(upload: Upload) -> tuple[str, bytes]:
    """An upload as the room takes it: its name and bytes (read from disk if need be)."""
    if upload.data is not None:
        return upload.filename, upload.data
    assert upload.path is not None
    return upload.filename, upload.path.read_bytes()


Render = Callable[[str, str, AsyncIterator[ReplyPart]], Awaitable[None]]


class RoomActions:
    """What plugins may do in the room (``core.adapter.Actions``): delete and post."""

    capabilities = CAPABILITIES

    def __init__(self, room: ChatRoom, render: Render) -> None:
        self.room, self.render = room, render

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        """Remove the message from the room."""
        self.room.delete(message_id)

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        """Refused: the room cannot time anyone out."""
        raise NotImplementedError("the chat room cannot time users out")

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        """Render ``parts`` in another channel of the same server."""
        await self.render(origin.server_id, channel_id, _stream(parts))


async def _stream(parts: Sequence[ReplyPart]) -> AsyncIterator[ReplyPart]:
    for part in parts:
        yield part


async def _guarded(parts: AsyncIterator[ReplyPart]) -> AsyncGenerator[ReplyPart, None]:
    """The stream's parts; a stream that fails ends with an error part instead (a last
    resort: the router answers errors itself). Failed writes are not caught here."""
    try:
        async for part in parts:
            yield part
    except Exception as exc:
        yield Error(f"something went wrong ({type(exc).__name__})")


class ChatRoomAdapter:
    """Serves an App in a ``ChatRoom`` (a ``core.adapter.Adapter``)."""

    name = PLATFORM
    limits = Limits(message_chars=MESSAGE_CHARS, edit_interval_s=0.01, max_chunks=5)
    capabilities = CAPABILITIES

    def __init__(self, app: App, room: ChatRoom) -> None:
        self.app, self.room = app, room
        self.actions = RoomActions(room, self.render)
        self._budget = WriteBudget(WRITES_PER_WINDOW, WRITE_WINDOW_S)  # shared by replies
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
        router = self.app.router
        if isinstance(event, MessageEvent) and not (
            await router.answers(event) or await router.watches(event)
        ):
            return
        parts = self.app.router.handle(event, actions=self.actions)
        await self.render(message.server, message.channel, parts)

    async def render(self, server: str, channel: str, parts: AsyncIterator[ReplyPart]) -> None:
        """Feed every part to the shared renderer's ``Reply`` in that channel and wait for
        the whole reply; the stream is closed in any case (it holds the conversation's turn
        lock until then)."""
        target = RoomTarget(self.room, server, channel, self.limits.file_bytes)
        reply: Reply[Message] = Reply(target, self._budget, self.limits)
        try:
            await reply.render(_guarded(parts))
        finally:
            closer = getattr(parts, "aclose", None)
            if closer is not None:
                await closer()

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
