"""Platform-neutral events (what arrives) and reply parts (what goes out).

Adapters build ``Event``s from SDK objects and render the ``ReplyPart`` stream the router
returns. Nothing here knows about any platform; the only I/O is an attachment's lazy
fetch, which the adapter supplies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputRejected


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent an event, and where. Ids are the platform's own (external) ids."""

    platform: str
    server_id: str
    channel_id: str
    user_id: str
    user_name: str = ""
    server_name: str = ""
    channel_name: str = ""
    is_admin: bool = False
    roles: tuple[str, ...] = ()  # the sender's role ids in the server (Discord); else empty

    @property
    def conversation_key(self) -> tuple[str, str, str, str]:
        """Turns with the same key run in order; different keys run concurrently."""
        return (self.platform, self.server_id, self.channel_id, self.user_id)


@dataclass(frozen=True, slots=True)
class Addressing:
    """What the platform says about how a message reached the bot (facts, not a decision).

    The core decides from these whether to answer: direct messages, mentions and replies
    to the bot always; other messages only in chat channels (``/channel chat on``, or
    ``listed_channel``: the platform's configuration names the channel).
    """

    direct: bool = False  # a private chat with the bot
    mentions_bot: bool = False
    replies_to_bot: bool = False
    listed_channel: bool = False

    @property
    def spoken_to(self) -> bool:
        """Whether the sender addressed the bot itself (not merely wrote in a channel)."""
        return self.direct or self.mentions_bot or self.replies_to_bot


DIRECT = Addressing(direct=True)


Fetch = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with an event; its bytes are fetched through the adapter on demand.

    ``size`` is what the platform reported. ``await attachment.read()`` refuses a file over
    ``max_bytes`` (the core sets it from ``limits.max_attachment_mb``) before downloading.
    """

    filename: str
    content_type: str = "application/octet-stream"
    size: int = 0
    fetch: Fetch | None = field(default=None, compare=False, repr=False)
    max_bytes: int | None = None  # set by the core from limits.max_attachment_mb

    async def read(self) -> bytes:
        """The file's bytes; ``InputRejected`` (shown to the user) when over ``max_bytes``."""
        cap = self.max_bytes
        if cap is not None and self.size > cap:
            raise InputRejected(_too_big(self.filename, self.size, cap))
        if self.fetch is None:
            raise InputRejected(f"The file {self.filename!r} cannot be downloaded.")
        data = await self.fetch()
        if cap is not None and len(data) > cap:
            raise InputRejected(_too_big(self.filename, len(data), cap))
        return data


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A chat message (``addressing``: how it reached the bot; console and DMs: direct)."""

    origin: Origin
    text: str
    message_id: str = ""
    attachments: tuple[Attachment, ...] = ()
    addressing: Addressing = DIRECT


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A command invocation.

    Text platforms (console, Telegram) fill ``text`` with the raw line after the slash
    name (``"enable calculator"``) and leave ``options`` empty; structured platforms
    (Discord) fill ``subcommand`` and typed ``options`` and leave ``text`` empty. The core
    validates both the same way against the command's spec.
    """

    origin: Origin
    name: str
    text: str = ""
    subcommand: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    """A press on a button the bot sent earlier; ``custom_id`` is ``plugin:action:arg``."""

    origin: Origin
    custom_id: str


Event = MessageEvent | CommandEvent | ButtonEvent


# ---- reply parts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A streamed piece of the answer; the concatenation of deltas precedes ``Text``."""

    text: str


@dataclass(frozen=True, slots=True)
class Text:
    """The complete text of an answer (after all its deltas)."""

    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image file to attach."""

    path: Path
    caption: str = ""


@dataclass(frozen=True, slots=True)
class File:
    """Any other file to attach."""

    path: Path
    filename: str = ""


@dataclass(frozen=True, slots=True)
class Button:
    """One button; ``custom_id`` comes back in a ``ButtonEvent``."""

    label: str
    custom_id: str
    style: str = "secondary"


@dataclass(frozen=True, slots=True)
class Buttons:
    """A row of buttons attached to the reply."""

    buttons: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress of long work; ``fraction`` in [0, 1] or None when unknown."""

    label: str
    fraction: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Error:
    """A user-facing error message (never a traceback)."""

    message: str


def quoted(name: str, limit: int = 80) -> str:
    """A name someone else chose (a file's, a tool's) on one line, cut to ``limit``
    characters, in quotes, for a reply's text (the renderers escape the rest)."""
    flat = " ".join(name.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return f"“{flat}”"


def _too_big(filename: str, size: int, cap: int) -> str:
    # The name is the sender's text: shown as data (repr), cut to a sane length.
    name = repr(filename[:80])
    return f"The file {name} is {_size(size)}; the limit is {_size(cap)}."


def _size(count: int) -> str:
    mb = 1024 * 1024
    return f"{count / mb:.1f} MB" if count >= mb else f"{max(1, round(count / 1024))} KB"


ReplyPart = TextDelta | Text | Image | File | Buttons | Progress | Error
