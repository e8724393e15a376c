"""The adapter port: what a chat platform tells the core, and what the core may ask of it.

An adapter (Discord, Telegram, the console, the tests' chat room) translates its SDK's
objects into ``core.events`` and renders reply streams within its ``Limits``. It reports
facts (``core.events.Addressing``); the core decides who is answered. Plugins act on the
platform only through ``Actions`` (delete a message, time out a user, post to a channel),
and only those the adapter lists in ``capabilities``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.events import Origin, ReplyPart

DELETE = "delete"  # delete a user's message
TIMEOUT = "timeout"  # stop a user from writing for a while
POST = "post"  # post to a channel other than the one replied to
BUTTONS = "buttons"  # render Buttons parts
EDITS = "edits"  # edit a sent message (streamed replies)
FILES = "files"  # send images and files


@dataclass(frozen=True, slots=True)
class Limits:
    """A platform's limits, which the shared renderer (``bot.render``) keeps replies within."""

    message_chars: int
    edit_interval_s: float = 1.0
    file_bytes: int = 8 * 1024 * 1024
    button_data_bytes: int = 100
    max_chunks: int = 5  # messages per reply before the rest goes as a text file


class Actions(Protocol):
    """What a plugin may ask the caller's platform to do.

    ``capabilities`` is everything the platform can do (``Adapter.capabilities``): the
    core checks tools' ``needs`` against it, so an adapter passes one ``Actions`` with
    every event it routes.
    """

    capabilities: frozenset[str]

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        """Delete message ``message_id`` in ``origin``'s channel."""
        ...

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        """Keep ``origin``'s user from writing in its server for ``seconds``."""
        ...

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        """Post ``parts`` to channel ``channel_id`` of ``origin``'s server."""
        ...


class Adapter(Protocol):
    """A running connection to one chat platform."""

    name: str
    limits: Limits
    capabilities: frozenset[str]

    async def start(self) -> None:
        """Connect and begin turning the platform's messages into events."""
        ...

    async def stop(self) -> None:
        """Disconnect; pending replies are abandoned cleanly."""
        ...

    async def wait_closed(self) -> None:
        """Return when the connection ends; raise its error if it failed."""
        ...


class NoActions:
    """The ``Actions`` of a platform that can delete, time out and post nothing.

    ``capabilities`` still names what it renders (buttons, edits, files), so tools that
    need those are offered there.
    """

    def __init__(self, capabilities: frozenset[str] = frozenset()) -> None:
        self.capabilities = capabilities - {DELETE, TIMEOUT, POST}

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        """Refused: this platform cannot delete messages."""
        raise NotImplementedError("this platform cannot delete messages")

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        """Refused: this platform cannot time users out."""
        raise NotImplementedError("this platform cannot time users out")

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        """Refused: this platform cannot post elsewhere."""
        raise NotImplementedError("this platform cannot post to other channels")
