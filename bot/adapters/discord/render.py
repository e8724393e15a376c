"""Rendering a reply stream on Discord: streamed edits, progress, attachments, buttons.

A ``Reply`` takes the router's parts one by one and turns them into Discord writes through
a ``Sink`` (``sinks``). Streamed text is sent once and then edited, at most once per
``edit_interval_s`` per message and within the shared ``WriteBudget``; text over 2,000
characters continues in further messages (``text.split_capped``), at most
``MAX_TEXT_MESSAGES`` of them: the last one then says that the rest of the text follows as
a ``.txt`` file, attached when the reply ends (the text is final). Progress and buttons
sent before any content (a Cancel button) share one placeholder message that the first
content replaces. Rate-limit (429) retries are discord.py's job: nothing here catches them
or puts a timeout around a request. This module decides nothing about *what* to say, and
never reads events.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path
from typing import Any

import discord

from core.events import Buttons, Error, File, Image, Progress, ReplyPart, Text, TextDelta

from .sinks import Sink, WriteBudget
from .text import MESSAGE_LIMIT, split_capped
from .views import button_view

log = logging.getLogger(__name__)

_RESULT_WRITES = 3  # progress leaves room for a result's image, its text and its buttons
MAX_TEXT_MESSAGES = 5  # per reply; text beyond them is sent as one .txt file
REST_FILENAME = "reply.txt"
_REST_COMING = "✂️ The rest of this answer follows as a file."

_Shown = tuple[str, str | None]  # a text message's content, and the text of its file


class Reply:
    """Renders one reply stream: ``await reply.part(p)`` for each part, then ``finish()``."""

    def __init__(self, sink: Sink, budget: WriteBudget, edit_interval_s: float) -> None:
        self._sink = sink
        self._budget = budget
        self._interval = edit_interval_s
        self._answers: list[str] = []  # finished answers (Text parts)
        self._deltas: list[str] = []  # the answer being streamed
        self._messages: list[discord.Message] = []  # the text's messages, chunk by chunk
        self._shown: list[_Shown] = []
        self._placeholder: discord.Message | None = None  # progress and controls, no content
        self._controls = False  # the placeholder carries buttons sent before any content
        self._progress_shown: str | None = None
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
                self._placeholder, self._controls = None, False
                self._posted = True

    async def finish(self) -> None:
        """Write the final text; remove a progress placeholder nobody replaced (one that
        carries buttons stays, without its progress line)."""
        await self._flush_now(final=True)
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is not None and not self._controls:
            await placeholder.delete()
        elif placeholder is not None and self._progress_shown is not None:
            await self._budget.acquire(self._sink.key)
            await placeholder.edit(content=None)
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

    async def _flush_now(self, *, final: bool = False) -> None:
        if self._flusher is not None:
            await self._flusher  # re-raises a failed write
            self._flusher = None
        await self._flush(final=final)

    def _raise_flush_error(self) -> None:
        if self._flusher is not None and self._flusher.done():
            flusher, self._flusher = self._flusher, None
            error = None if flusher.cancelled() else flusher.exception()
            if error is not None:
                raise error

    async def _flush(self, *, final: bool = False) -> None:
        """Bring the text's messages up to date: edit changed ones, post new ones."""
        async with self._lock:
            self._dirty = False
            for index, shown in enumerate(self._layout(final)):
                if index < len(self._shown) and self._shown[index] == shown:
                    continue
                await self._budget.acquire(self._sink.key)
                content, rest = shown
                files = [] if rest is None else [_rest_file(rest, self._sink.upload_limit)]
                if index < len(self._messages):
                    had_file = self._shown[index][1] is not None
                    fields: dict[str, Any] = {"content": content}
                    if files or had_file:
                        fields["attachments"] = files
                    await self._messages[index].edit(**fields)
                    self._shown[index] = shown
                else:
                    self._messages.append(await self._post_text(content, files))
                    self._shown.append(shown)
                self._last_write = time.monotonic()

    def _layout(self, final: bool) -> list[_Shown]:
        """The text's messages: chunks, then (text too long) a note with the rest as a file.

        The file is attached only once the text is final; while it streams the note says
        that a file will follow. Blank chunks are left out (Discord refuses them).
        """
        chunks, rest = split_capped(self._text(), MAX_TEXT_MESSAGES)
        shown: list[_Shown] = [(chunk, None) for chunk in chunks if chunk.strip()]
        if rest and final:
            shown.append((_rest_note(rest, self._sink.upload_limit), rest))
        elif rest:
            shown.append((_REST_COMING, None))
        return shown

    async def _post_text(self, chunk: str, files: list[discord.File]) -> discord.Message:
        """A new text message; the first one takes over a progress placeholder."""
        self._posted = True
        fields: dict[str, Any] = {"content": chunk}
        if files:
            fields["attachments"] = files
        filled = await self._fill_placeholder(**fields)
        return filled if filled is not None else await self._sink.post(chunk, files=files)

    async def _fill_placeholder(self, **fields: Any) -> discord.Message | None:
        """Show content in the placeholder, if there is one (and return it); its controls
        go, as the work they control is over."""
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is None:
            return None
        if self._controls:
            fields["view"] = None
            self._controls = False
        await placeholder.edit(**fields)
        return placeholder

    # ---- attachments, buttons, progress --------------------------------------------

    async def _attach(self, path: Path, filename: str, caption: str) -> None:
        await self._flush_now()
        note = _too_big(path, filename, self._sink.upload_limit)
        await self._budget.acquire(self._sink.key)
        self._posted = True
        content = (note or caption)[:MESSAGE_LIMIT]
        files = [] if note else [discord.File(path, filename=filename)]
        if await self._fill_placeholder(content=content or None, attachments=files) is None:
            await self._sink.post(content, files=files)

    async def _buttons(self, part: Buttons) -> None:
        await self._flush_now()
        view = button_view(part)
        await self._budget.acquire(self._sink.key)
        if self._messages:
            await self._messages[-1].edit(view=view)
        elif self._placeholder is not None:
            await self._placeholder.edit(view=view)
            self._controls = True
        elif self._posted:
            await self._sink.post("", view=view)
        else:
            # Buttons before any content control the work in progress (a Cancel button):
            # progress shows above them, and the result replaces both.
            self._placeholder = await self._sink.post("", view=view)
            self._controls = True
        self._posted = True

    async def _progress(self, part: Progress) -> None:
        """Progress shows only until the reply has content.

        The first line shows at once; later ones are dropped (a newer one will follow, or
        the result will) within the edit interval, and when the write budget would not
        keep room for the result: progress never makes the result wait.
        """
        if self._posted and self._placeholder is None:
            return
        content = progress_line(part)
        if content == self._progress_shown:
            return
        if self._placeholder is None:
            await self._budget.acquire(self._sink.key)
            self._placeholder = await self._sink.post(content)
            self._posted = True
        else:
            throttled = time.monotonic() < self._last_write + self._interval
            if self._progress_shown is not None and throttled:
                return
            if not self._budget.try_acquire(self._sink.key, keep_free=_RESULT_WRITES):
                return
            await self._placeholder.edit(content=content)
        self._progress_shown = content
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


def _rest_file(rest: str, upload_limit: int) -> discord.File:
    """The rest of a long answer as a UTF-8 text file, cut to the upload limit."""
    return discord.File(io.BytesIO(_rest_bytes(rest, upload_limit)), filename=REST_FILENAME)


def _rest_note(rest: str, upload_limit: int) -> str:
    """The content of the message that carries the rest of a long answer."""
    size = len(_rest_bytes(rest, upload_limit))
    if size < len(rest.encode()):
        return (
            f"📎 The rest of this answer is too long for messages; {REST_FILENAME} holds "
            f"its first {size / 1_048_576:.1f} MiB (the upload limit here)."
        )
    return f"📎 The rest of this answer ({len(rest):,} characters) is in {REST_FILENAME}."


def _rest_bytes(rest: str, upload_limit: int) -> bytes:
    data = rest.encode()
    if len(data) <= upload_limit:
        return data
    return data[:upload_limit].decode(errors="ignore").encode()  # no half character


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
