"""Where a reply's messages go: a channel, or a deferred interaction; and the write budget.

A ``Sink`` posts a reply's messages and shows its errors (a channel reply, or an
interaction's original response plus follow-ups); ``WriteBudget`` keeps the writes of all
replies in one channel or interaction within Discord's limits. Rate-limit (429) retries
are discord.py's job: nothing here catches them. This module never reads reply parts.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Hashable
from typing import Protocol

import discord

from .text import MESSAGE_LIMIT


class WriteBudget:
    """At most ``count`` writes per ``window`` seconds per key (a channel or interaction).

    Shared by every reply of one adapter, so that concurrent replies in one channel stay
    within Discord's per-channel limit together instead of each relying on 429s.
    """

    def __init__(self, count: int = 5, window: float = 5.0) -> None:
        self._count = count
        self._window = window
        self._stamps: dict[Hashable, deque[float]] = {}

    async def acquire(self, key: Hashable) -> None:
        """Wait until one more write under ``key`` fits in the window, and take it."""
        while True:
            now = time.monotonic()
            stamps = self._current(key, now)
            if len(stamps) < self._count:
                stamps.append(now)
                self._forget_idle(now)
                return
            await asyncio.sleep(stamps[0] + self._window - now)

    def try_acquire(self, key: Hashable, *, keep_free: int = 0) -> bool:
        """Take a write under ``key`` only if ``keep_free`` more still fit after it.

        For updates that can be dropped (progress): they never wait, and they leave room
        for the writes that must happen (the result) so those do not wait either.
        """
        now = time.monotonic()
        stamps = self._current(key, now)
        if len(stamps) + 1 + keep_free > self._count:
            return False
        stamps.append(now)
        self._forget_idle(now)
        return True

    def _current(self, key: Hashable, now: float) -> deque[float]:
        stamps = self._stamps.setdefault(key, deque())
        while stamps and stamps[0] <= now - self._window:
            stamps.popleft()
        return stamps

    def _forget_idle(self, now: float) -> None:
        if len(self._stamps) > 1000:
            idle = [k for k, s in self._stamps.items() if not s or s[-1] <= now - self._window]
            for key in idle:
                del self._stamps[key]


class Sink(Protocol):
    """Where a reply's messages go; ``post`` returns a message that can be edited."""

    key: Hashable
    upload_limit: int

    async def post(
        self,
        content: str,
        *,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        """Post one message of the reply."""
        ...

    async def error(self, message: str, placeholder: discord.Message | None) -> None:
        """Show a user-facing error (ephemerally where the platform allows)."""
        ...

    async def empty(self) -> None:
        """Called when a reply ends without posting anything."""
        ...


class ChannelSink:
    """Replies in a channel: the first message answers ``reference``, the rest follow it."""

    def __init__(self, message: discord.Message, upload_limit: int) -> None:
        self._message = message
        self._replied = False
        self.key: Hashable = ("channel", message.channel.id)
        self.upload_limit = upload_limit

    async def post(
        self,
        content: str,
        *,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        """Send a message; the first one is a reply to the user's message (no ping)."""
        kwargs: dict[str, object] = {"content": content or None, "files": files or []}
        if view is not None:
            kwargs["view"] = view
        if not self._replied:
            kwargs["reference"] = self._message.to_reference(fail_if_not_exists=False)
            kwargs["mention_author"] = False
            self._replied = True
        return await self._message.channel.send(**kwargs)  # type: ignore[call-overload]

    async def error(self, message: str, placeholder: discord.Message | None) -> None:
        """Channels have no ephemeral messages: the error is a visible reply."""
        text = f"⚠️ {message}"[:MESSAGE_LIMIT]
        if placeholder is not None:
            await placeholder.edit(content=text, view=None)  # a Cancel button ends here
        else:
            await self.post(text)

    async def empty(self) -> None:
        """Nothing to do: the user's message simply got no answer."""


class InteractionSink:
    """Replies to a deferred interaction: the original response first, then follow-ups."""

    def __init__(self, interaction: discord.Interaction, upload_limit: int) -> None:
        self._interaction = interaction
        self._original_used = False
        self.key: Hashable = ("interaction", interaction.id)
        limit = getattr(interaction, "filesize_limit", None)  # the interaction's own limit
        self.upload_limit = limit if isinstance(limit, int) and limit > 0 else upload_limit

    async def post(
        self,
        content: str,
        *,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        """The first post fills the original response; later posts are follow-ups."""
        if not self._original_used:
            self._original_used = True
            return await self._interaction.edit_original_response(
                content=content or None, attachments=files or [], view=view
            )
        webhook = self._interaction.followup
        if view is None:
            return await webhook.send(content, files=files or [], wait=True)
        return await webhook.send(content, files=files or [], view=view, wait=True)

    async def error(self, message: str, placeholder: discord.Message | None) -> None:
        """An ephemeral follow-up; an original response showing nothing useful goes first.

        After a deferral the first follow-up would *replace* the "thinking" response and
        could not be ephemeral, so an unused (or progress-only) original is deleted.
        """
        if not self._original_used or placeholder is not None:
            self._original_used = True
            await self._interaction.delete_original_response()
        await self._interaction.followup.send(message[:MESSAGE_LIMIT], ephemeral=True)

    async def empty(self) -> None:
        """A deferred interaction must be answered: say the command is done."""
        if not self._original_used:
            self._original_used = True
            await self._interaction.edit_original_response(content="Done.")
