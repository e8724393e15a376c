"""Platform-neutral events (what arrives) and reply parts (what goes out).

Adapters build ``Event``s from SDK objects and render the ``ReplyPart`` stream the router
returns. Nothing here knows about any platform; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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

    @property
    def conversation_key(self) -> tuple[str, str, str, str]:
        """Turns with the same key run in order; different keys run concurrently."""
        return (self.platform, self.server_id, self.channel_id, self.user_id)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message (already saved locally by the adapter)."""

    path: Path
    filename: str
    content_type: str = "application/octet-stream"
    size: int = 0


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A chat message addressed to the bot."""

    origin: Origin
    text: str
    message_id: str = ""
    attachments: tuple[Attachment, ...] = ()


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


ReplyPart = TextDelta | Text | Image | File | Buttons | Progress | Error
