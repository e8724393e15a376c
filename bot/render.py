"""The streaming renderer every adapter shares: reply parts in, message writes out.

A ``Reply`` takes the router's parts one by one and turns them into writes on a
platform ``Target`` (post, edit, delete a message), within the platform's ``Limits``:
streamed text is posted once and then edited, at most once per ``edit_interval_s`` and
within the shared ``WriteBudget``; text over ``message_chars`` continues in further
messages (split without breaking code blocks, ``bot.text``), at most ``max_chunks`` of
them: the last then says that the rest follows as a ``.txt`` file, attached when the
reply ends. Progress and buttons sent before any content (a Cancel button) share one
placeholder message that the first content replaces; progress keeps a write budget free
for the result. A target with drafts (Telegram's private chats) shows streaming text as
a draft and posts the message once, when it is whole. Files over the upload limit are
replaced by a note. This module decides nothing about *what* to say and never touches a
platform SDK: the target does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from bot.text import split_capped
from core.adapter import Limits
from core.events import Buttons, Error, File, Image, Progress, ReplyPart, Text, TextDelta

log = logging.getLogger(__name__)

M = TypeVar("M")  # a platform's handle of a sent message
_RESULT_WRITES = 3  # progress leaves room for a result's image, its text and its buttons
REST_FILENAME = "reply.txt"
_REST_COMING = "✂️ The rest of this answer follows as a file."


@dataclass(frozen=True, slots=True)
class Upload:
    """A file to attach: from disk (``path``) or made here (``data``)."""

    filename: str
    path: Path | None = None
    data: bytes | None = None


class Keep:
    """Leave this field of a message as it is (``Target.edit``)."""


KEEP = Keep()


class Target(Protocol[M]):
    """Where one reply's messages go, in a platform's own calls."""

    key: Hashable  # the write budget's key (a channel, an interaction)
    upload_limit: int  # bytes per file here

    async def post(
        self, content: str, *, files: Sequence[Upload] = (), buttons: Buttons | None = None
    ) -> M:
        """Post one message of the reply."""
        ...

    async def edit(
        self,
        message: M,
        *,
        content: str | Keep | None = KEEP,
        files: Sequence[Upload] | None = None,
        buttons: Buttons | Keep | None = KEEP,
    ) -> None:
        """Change a sent message: new content (None: none), files (None: keep them),
        buttons (None: remove them)."""
        ...

    async def delete(self, message: M) -> None:
        """Delete a sent message (a placeholder nobody needs any more)."""
        ...

    async def error(self, message: str, placeholder: M | None) -> None:
        """Show a user-facing error (privately where the platform allows)."""
        ...

    async def empty(self) -> None:
        """Called when a reply ends without posting anything."""
        ...


class WriteBudget:
    """At most ``count`` writes per ``window`` seconds per key (a channel or interaction).

    Shared by every reply of one adapter, so that concurrent replies in one channel stay
    within the platform's limit together instead of each relying on rate-limit errors.
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


_Shown = tuple[str, str | None]  # a text message's content, and the text of its file


class Reply(Generic[M]):
    """Renders one reply stream: ``await reply.part(p)`` for each part, then ``finish()``."""

    def __init__(self, target: Target[M], budget: WriteBudget, limits: Limits) -> None:
        self._target = target
        self._budget = budget
        self._limits = limits
        self._interval = limits.edit_interval_s
        self._answers: list[str] = []  # finished answers (Text parts)
        self._deltas: list[str] = []  # the answer being streamed
        self._messages: list[M] = []  # the text's messages, chunk by chunk
        self._shown: list[_Shown] = []
        self._placeholder: M | None = None  # progress and controls, no content
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
                await self._target.error(message[: self._limits.message_chars], self._placeholder)
                self._placeholder, self._controls = None, False
                self._posted = True

    async def finish(self) -> None:
        """Write the final text; remove a progress placeholder nobody replaced (one that
        carries buttons stays, without its progress line)."""
        await self._flush_now(final=True)
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is not None and not self._controls:
            await self._target.delete(placeholder)
        elif placeholder is not None and self._progress_shown is not None:
            await self._budget.acquire(self._target.key)
            await self._target.edit(placeholder, content=None)
        if not self._posted:
            await self._target.empty()

    async def render(
        self, parts: AsyncIterator[ReplyPart], *, started: Callable[[], object] | None = None
    ) -> None:
        """Render a whole reply stream, then ``finish()``; the stream is closed in any case
        (the router's holds the conversation's turn lock until then). ``started`` is called
        at the first part (an adapter stops its "typing…" there)."""
        try:
            async for part in parts:
                if started is not None:
                    started()
                    started = None
                await self.part(part)
            await self.finish()
        finally:
            await self.abort()
            closer = getattr(parts, "aclose", None)
            if closer is not None:
                await closer()

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
            if not final and await self._drafted():
                return
            for index, shown in enumerate(self._layout(final)):
                if index < len(self._shown) and self._shown[index] == shown:
                    continue
                await self._budget.acquire(self._target.key)
                content, rest = shown
                files = [] if rest is None else [self._rest_file(rest)]
                if index < len(self._messages):
                    had_file = self._shown[index][1] is not None
                    replace = files if files or had_file else None
                    await self._target.edit(self._messages[index], content=content, files=replace)
                    self._shown[index] = shown
                else:
                    self._messages.append(await self._post_text(content, files))
                    self._shown.append(shown)
                self._last_write = time.monotonic()

    async def _drafted(self) -> bool:
        """Show streaming text as the platform's draft (Telegram's private chats), which
        costs no message writes, while nothing else is shown and it fits one message.

        A target offers this with ``async def draft(content) -> bool`` (False: drafts do
        not work here; the reply falls back to posting and editing)."""
        draft = getattr(self._target, "draft", None)
        text = self._text()
        if draft is None or self._messages or self._placeholder is not None or not text:
            return False
        if len(text) > self._limits.message_chars or not await draft(text):
            return False
        self._last_write = time.monotonic()
        return True

    def _layout(self, final: bool) -> list[_Shown]:
        """The text's messages: chunks, then (text too long) a note with the rest as a file.

        The file is attached only once the text is final; while it streams the note says
        that a file will follow. Blank chunks are left out (platforms refuse them).
        """
        limits = self._limits
        chunks, rest = split_capped(self._text(), limits.max_chunks, limits.message_chars)
        shown: list[_Shown] = [(chunk, None) for chunk in chunks if chunk.strip()]
        if rest and final:
            shown.append((self._rest_note(rest), rest))
        elif rest:
            shown.append((_REST_COMING, None))
        return shown

    async def _post_text(self, chunk: str, files: list[Upload]) -> M:
        """A new text message; the first one takes over a progress placeholder."""
        self._posted = True
        filled = await self._fill_placeholder(chunk, files or None)
        return filled if filled is not None else await self._target.post(chunk, files=files)

    async def _fill_placeholder(self, content: str | None, files: list[Upload] | None) -> M | None:
        """Show content in the placeholder, if there is one (and return it); its controls
        go, as the work they control is over."""
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is None:
            return None
        buttons: Keep | None = KEEP
        if self._controls:
            buttons, self._controls = None, False
        await self._target.edit(placeholder, content=content, files=files, buttons=buttons)
        return placeholder

    # ---- attachments, buttons, progress --------------------------------------------

    async def _attach(self, path: Path, filename: str, caption: str) -> None:
        await self._flush_now()
        note = _too_big(path, filename, self._target.upload_limit)
        await self._budget.acquire(self._target.key)
        self._posted = True
        content = (note or caption)[: self._limits.message_chars]
        files = [] if note else [Upload(filename, path=path)]
        if await self._fill_placeholder(content or None, files) is None:
            await self._target.post(content, files=files)

    async def _buttons(self, part: Buttons) -> None:
        await self._flush_now()
        await self._budget.acquire(self._target.key)
        if self._messages:
            await self._target.edit(self._messages[-1], buttons=part)
        elif self._placeholder is not None:
            await self._target.edit(self._placeholder, buttons=part)
            self._controls = True
        elif self._posted:
            await self._target.post("", buttons=part)
        else:
            # Buttons before any content control the work in progress (a Cancel button):
            # progress shows above them, and the result replaces both.
            self._placeholder = await self._target.post("", buttons=part)
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
        content = progress_line(part)[: self._limits.message_chars]
        if content == self._progress_shown:
            return
        if self._placeholder is None:
            await self._budget.acquire(self._target.key)
            self._placeholder = await self._target.post(content)
            self._posted = True
        else:
            throttled = time.monotonic() < self._last_write + self._interval
            if self._progress_shown is not None and throttled:
                return
            if not self._budget.try_acquire(self._target.key, keep_free=_RESULT_WRITES):
                return
            await self._target.edit(self._placeholder, content=content)
        self._progress_shown = content
        self._last_write = time.monotonic()

    # ---- the rest of a long answer -------------------------------------------------

    def _rest_file(self, rest: str) -> Upload:
        """The rest of a long answer as a UTF-8 text file, cut to the upload limit."""
        return Upload(REST_FILENAME, data=_rest_bytes(rest, self._target.upload_limit))

    def _rest_note(self, rest: str) -> str:
        """The content of the message that carries the rest of a long answer."""
        size = len(_rest_bytes(rest, self._target.upload_limit))
        if size < len(rest.encode()):
            return (
                f"📎 The rest of this answer is too long for messages; {REST_FILENAME} holds "
                f"its first {size / 1_048_576:.1f} MiB (the upload limit here)."
            )
        return f"📎 The rest of this answer ({len(rest):,} characters) is in {REST_FILENAME}."


def progress_line(part: Progress) -> str:
    """``⏳ label [████░░░░░░] 40% detail`` (no bar when the fraction is unknown)."""
    words = [f"⏳ {part.label}"]
    if part.fraction is not None:
        fraction = min(max(part.fraction, 0.0), 1.0)
        filled = round(fraction * 10)
        words.append(f"[{'█' * filled}{'░' * (10 - filled)}] {fraction:.0%}")
    if part.detail:
        words.append(part.detail)
    return " ".join(words)


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
