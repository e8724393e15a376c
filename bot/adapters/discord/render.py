"""Rendering a reply stream on Discord: streamed edits, splitting, attachments, errors.

A ``Reply`` takes the router's parts one by one and turns them into Discord writes through
a ``Sink`` (a channel reply, or an interaction's original response plus follow-ups).
Streamed text is sent once and then edited, at most once per ``edit_interval_s`` per
message and within a per-channel write budget (Discord allows about 5 per 5 s); text over
2,000 characters continues in further messages without breaking code blocks. Rate-limit
(429) retries are discord.py's job: nothing here catches them or puts a timeout around a
request. This module decides nothing about *what* to say, and never reads events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Hashable
from pathlib import Path
from typing import Protocol

import discord

from bot.events import Buttons, Error, File, Image, Progress, ReplyPart, Text, TextDelta

from .views import button_view

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
_FENCE = "```"
_CLOSE = "\n```"


# ---- splitting ---------------------------------------------------------------------


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Cuts at a line break (else a space, else anywhere); a code block open at a cut is
    closed at the end of its chunk and reopened, with the same language, in the next.
    """
    chunks: list[str] = []
    fence: str | None = None  # the opening line of the code block a chunk starts inside
    rest = text
    while rest:
        prefix = f"{fence}\n" if fence else ""
        if len(prefix) + len(rest) <= limit:
            chunks.append(prefix + rest)
            break
        piece, rest = _cut(rest, limit - len(prefix) - len(_CLOSE))
        fence = _fence_after(piece, fence)
        chunks.append(prefix + piece + (_CLOSE if fence else ""))
    return chunks


def _cut(text: str, room: int) -> tuple[str, str]:
    """The head of ``text`` that fits in ``room`` characters, and what is left after it."""
    newline = text.rfind("\n", 0, room + 1)
    if newline > room // 2:
        return text[:newline], text[newline + 1 :]
    space = text.rfind(" ", 0, room)
    if space > room // 2:
        return text[: space + 1], text[space + 1 :]
    return text[:room], text[room:]


def _fence_after(piece: str, fence: str | None) -> str | None:
    """The code block still open after ``piece`` (its opening line), given the one before."""
    for line in piece.split("\n"):
        stripped = line.strip()
        if not stripped.startswith(_FENCE):
            continue
        fence = None if fence else stripped
    return fence


# ---- write budget ------------------------------------------------------------------


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
            stamps = self._stamps.setdefault(key, deque())
            while stamps and stamps[0] <= now - self._window:
                stamps.popleft()
            if len(stamps) < self._count:
                stamps.append(now)
                self._forget_idle(now)
                return
            await asyncio.sleep(stamps[0] + self._window - now)

    def _forget_idle(self, now: float) -> None:
        if len(self._stamps) > 1000:
            idle = [k for k, s in self._stamps.items() if not s or s[-1] <= now - self._window]
            for key in idle:
                del self._stamps[key]


# ---- sinks -------------------------------------------------------------------------


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
            await placeholder.edit(content=text)
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


# ---- the reply ---------------------------------------------------------------------


class Reply:
    """Renders one reply stream: ``await reply.part(p)`` for each part, then ``finish()``."""

    def __init__(self, sink: Sink, budget: WriteBudget, edit_interval_s: float) -> None:
        self._sink = sink
        self._budget = budget
        self._interval = edit_interval_s
        self._answers: list[str] = []  # finished answers (Text parts)
        self._deltas: list[str] = []  # the answer being streamed
        self._messages: list[discord.Message] = []  # the text's messages, chunk by chunk
        self._shown: list[str] = []
        self._placeholder: discord.Message | None = None  # shows progress, nothing else yet
        self._posted = False
        self._last_write = float("-inf")
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def part(self, part: ReplyPart) -> None:
        """Render one part (text is flushed later, throttled)."""
        self._raise_flush_error()
        match part:
            case TextDelta(text=text):
                self._deltas.append(text)
                self._dirty = True
                self._schedule_flush()
            case Text(text=text):
                self._deltas = []
                self._answers.append(text)
                self._dirty = True
                self._schedule_flush()
            case Image(path=path, caption=caption):
                await self._attach(path, path.name, caption)
            case File(path=path, filename=filename):
                await self._attach(path, filename or path.name, "")
            case Buttons():
                await self._buttons(part)
            case Progress():
                await self._progress(part)
            case Error(message=message):
                await self._flush_now()
                await self._sink.error(message, self._placeholder)
                self._placeholder = None
                self._posted = True

    async def finish(self) -> None:
        """Write the final text; remove a progress placeholder nobody replaced."""
        await self._flush_now()
        if self._placeholder is not None:
            await self._placeholder.delete()
            self._placeholder = None
        if not self._posted:
            await self._sink.empty()

    async def abort(self) -> None:
        """Stop a pending throttled edit (the reply is being dropped)."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    # ---- text ----------------------------------------------------------------------

    def _text(self) -> str:
        current = "".join(self._deltas)
        return "\n\n".join([*self._answers, current] if current else self._answers).strip()

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._raise_flush_error()
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        """Flush when the edit interval allows; again while text keeps arriving meanwhile."""
        while self._dirty:
            await asyncio.sleep(max(0.0, self._last_write + self._interval - time.monotonic()))
            await self._flush()

    async def _flush_now(self) -> None:
        if self._flusher is not None:
            await self._flusher  # re-raises a failed write
            self._flusher = None
        await self._flush()

    def _raise_flush_error(self) -> None:
        if self._flusher is not None and self._flusher.done():
            flusher, self._flusher = self._flusher, None
            error = None if flusher.cancelled() else flusher.exception()
            if error is not None:
                raise error

    async def _flush(self) -> None:
        """Bring the text's messages up to date: edit changed chunks, post new ones."""
        async with self._lock:
            self._dirty = False
            chunks = split_message(self._text())
            for index, chunk in enumerate(chunks):
                if index < len(self._shown) and self._shown[index] == chunk:
                    continue
                await self._budget.acquire(self._sink.key)
                if index < len(self._messages):
                    await self._messages[index].edit(content=chunk)
                    self._shown[index] = chunk
                else:
                    self._messages.append(await self._post_text(chunk))
                    self._shown.append(chunk)
                self._last_write = time.monotonic()

    async def _post_text(self, chunk: str) -> discord.Message:
        """A new text message; the first one takes over a progress placeholder."""
        self._posted = True
        if self._placeholder is not None:
            message, self._placeholder = self._placeholder, None
            await message.edit(content=chunk)
            return message
        return await self._sink.post(chunk)

    # ---- attachments, buttons, progress --------------------------------------------

    async def _attach(self, path: Path, filename: str, caption: str) -> None:
        await self._flush_now()
        note = _too_big(path, filename, self._sink.upload_limit)
        await self._budget.acquire(self._sink.key)
        self._posted = True
        placeholder, self._placeholder = self._placeholder, None
        content = (note or caption)[:MESSAGE_LIMIT]
        files = [] if note else [discord.File(path, filename=filename)]
        if placeholder is not None:
            await placeholder.edit(content=content or None, attachments=files)
        else:
            await self._sink.post(content, files=files)

    async def _buttons(self, part: Buttons) -> None:
        await self._flush_now()
        view = button_view(part)
        await self._budget.acquire(self._sink.key)
        self._posted = True
        if self._messages:
            await self._messages[-1].edit(view=view)
        elif self._placeholder is not None:
            placeholder, self._placeholder = self._placeholder, None
            await placeholder.edit(content=None, view=view)
        else:
            await self._sink.post("", view=view)

    async def _progress(self, part: Progress) -> None:
        """Progress shows only until the reply has content; it is throttled like text."""
        if self._posted and self._placeholder is None:
            return
        now = time.monotonic()
        if self._placeholder is not None and now < self._last_write + self._interval:
            return  # drop this update: a newer one will follow, or the result will
        await self._budget.acquire(self._sink.key)
        content = progress_line(part)
        if self._placeholder is None:
            self._placeholder = await self._sink.post(content)
            self._posted = True
        else:
            await self._placeholder.edit(content=content)
        self._last_write = time.monotonic()


def progress_line(part: Progress) -> str:
    """``⏳ label [████░░░░░░] 40% detail`` (no bar when the fraction is unknown)."""
    words = [f"⏳ {part.label}"]
    if part.fraction is not None:
        fraction = min(max(part.fraction, 0.0), 1.0)
        filled = round(fraction * 10)
        words.append(f"[{'█' * filled}{'░' * (10 - filled)}] {fraction:.0%}")
    if part.detail:
        words.append(part.detail)
    return " ".join(words)[:MESSAGE_LIMIT]


def _too_big(path: Path, filename: str, limit: int) -> str | None:
    """A short note instead of the file when it cannot be uploaded here, else None."""
    try:
        size = path.stat().st_size
    except OSError:
        log.warning("reply file %s is missing", path)
        return f"📎 {filename} could not be attached (the file is missing)."
    if size <= limit:
        return None
    return (
        f"📎 {filename} is too large to upload here "
        f"({size / 1_048_576:.1f} MiB; the limit is {limit / 1_048_576:.1f} MiB)."
    )
