"""The local console adapter: lines from stdin in, rendered replies out.

One line is one event: ``/name rest of line`` is a command, anything else a chat message,
blank lines are skipped. On a terminal answers stream as they are generated and long work
draws a progress bar (rich); on pipes each reply is written in full, one line per part, so
that stdout holds nothing but replies. Like every adapter it only translates: it never
decides what a line means beyond "command or message", and never imports a platform SDK.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import Progress as ProgressBar
from rich.progress import TaskID
from rich.text import Text as RichText

from core.adapter import DELETE, POST, TIMEOUT
from core.errors import UserError
from core.events import (
    Buttons,
    CommandEvent,
    Error,
    Event,
    File,
    Image,
    MessageEvent,
    Origin,
    Progress,
    ReplyPart,
    Text,
    TextDelta,
)

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

PLATFORM = "console"
_CHANNEL = "console"
_PROMPT = "you> "

LineReader = Callable[[], Awaitable[str | None]]


def console_origin(server: str, user: str, admin: bool) -> Origin:
    """The origin of every event typed in one console session."""
    return Origin(
        platform=PLATFORM,
        server_id=server,
        server_name=server,
        channel_id=_CHANNEL,
        channel_name=_CHANNEL,
        user_id=user,
        user_name=user,
        is_admin=admin,
    )


def parse_line(origin: Origin, line: str) -> Event | None:
    """Turn one input line into an event; ``None`` for a blank line.

    ``/plugins enable calculator`` becomes ``CommandEvent(name="plugins",
    text="enable calculator")``; a lone ``/`` asks for ``/help``.
    """
    stripped = line.strip()
    if not stripped:
        return None
    if not stripped.startswith("/"):
        return MessageEvent(origin, text=line.rstrip("\r\n"))
    name, _, rest = stripped[1:].partition(" ")
    return CommandEvent(origin, name=name.lower() or "help", text=rest.strip())


def format_part(part: ReplyPart) -> str | None:
    """The one-line (or multi-line) plain rendering of a non-streaming reply part."""
    match part:
        case Text(text=text):
            return text
        case Image(path=path, caption=caption):
            return f"[image] {path}" + (f"\n{caption}" if caption else "")
        case File(path=path):
            return f"[file] {path}"
        case Buttons(buttons=buttons):
            return "[buttons] " + " | ".join(f"{b.label} ({b.custom_id})" for b in buttons)
        case Error(message=message):
            return f"error: {message}"
    return None


class ConsoleActions:
    """Plugins' platform actions in the console: nothing is done, it says what would be."""

    capabilities = frozenset({DELETE, TIMEOUT, POST})

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        """Say that message ``message_id`` would be deleted."""
        self._say(f"[would delete message {message_id}]")

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        """Say that the user would be timed out."""
        self._say(f"[would time out {origin.user_id!r} for {seconds / 60:g} minutes: {reason}]")

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        """Say what would be posted to channel ``channel_id``."""
        for part in parts:
            rendered = format_part(part)
            if rendered is not None:
                self._say(f"[to channel {channel_id!r}] {rendered}")


async def run_console(
    app: App,
    *,
    server: str,
    user: str,
    admin: bool,
    stdin: TextIO,
    stdout: TextIO,
    interactive: bool | None = None,
) -> int:
    """Serve one console session until end of input; return the exit code (0).

    ``interactive`` defaults to "stdin and stdout are both terminals". Interactive
    sessions show a prompt, stream answers and draw progress bars; the others write each
    reply in full. Ctrl-C cancels the session (the caller turns that into exit code 0).
    """
    origin = console_origin(server, user, admin)
    if interactive is None:
        interactive = _isatty(stdin) and _isatty(stdout)
    renderer: _Renderer
    if interactive:
        console = Console(file=stdout, highlight=False)
        renderer = _LiveRenderer(console)
        read = _prompting(console, _line_reader(stdin, tty=True))
        console.print(
            f"[bold]Atelier[/bold] console — server [cyan]{server}[/cyan], user "
            f"[cyan]{user}[/cyan]{' (admin)' if admin else ''}. "
            "Type a message or /help; Ctrl-D quits.",
        )
    else:
        renderer = _PlainRenderer(stdout)
        read = _line_reader(stdin, tty=False)
    actions = ConsoleActions(renderer.note)
    count = 0
    while (line := await read()) is not None:
        event = parse_line(origin, line)
        if isinstance(event, MessageEvent):
            count += 1
            event = replace(event, message_id=f"console-{count}")
        if event is not None:
            await _answer(app, event, renderer, actions)
    if interactive:
        stdout.write("\n")
        stdout.flush()
    return 0


async def _answer(
    app: App, event: Event, renderer: _Renderer, actions: ConsoleActions | None = None
) -> None:
    """Render the reply stream of one event; a failure becomes one ``error:`` line."""
    failure: str | None = None
    renderer.begin()
    try:
        async for part in app.router.handle(event, actions=actions):
            renderer.part(part)
    except UserError as exc:
        failure = exc.user_message
    except Exception as exc:
        # The user sees one short line; operators get the details in the log (stderr).
        log.error("console: reply failed: %s: %s", type(exc).__name__, exc)
        log.debug("console: reply failure details", exc_info=True)
        failure = f"something went wrong ({type(exc).__name__}); see the log"
    finally:
        renderer.end()
    if failure is not None:
        renderer.part(Error(failure))
        renderer.end()


# ---- reading -----------------------------------------------------------------------


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _line_reader(stdin: TextIO, *, tty: bool) -> LineReader:
    """A coroutine function returning the next line, or ``None`` at end of input.

    A terminal is read through the event loop's reader callbacks (nothing blocks, and a
    Ctrl-C leaves no thread stuck in ``read``); anything else is read in a worker thread.
    """
    if tty:
        try:
            fd = stdin.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            fd = -1
        if fd >= 0:
            encoding = getattr(stdin, "encoding", None) or "utf-8"
            return lambda: _read_fd_line(fd, encoding, stdin)

    async def read_in_thread() -> str | None:
        line = await asyncio.get_running_loop().run_in_executor(None, stdin.readline)
        return line or None

    return read_in_thread


async def _read_fd_line(fd: int, encoding: str, stdin: TextIO) -> str | None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    try:
        loop.add_reader(fd, on_readable)
    except (NotImplementedError, OSError, ValueError):
        # No reader callbacks for this fd (e.g. Windows' proactor loop): use a thread.
        line = await loop.run_in_executor(None, stdin.readline)
        return line or None
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    # A terminal in canonical mode hands over at most one line per read.
    data = os.read(fd, 65536)
    return data.decode(encoding, errors="replace") if data else None


def _prompting(console: Console, read: LineReader) -> LineReader:
    async def read_with_prompt() -> str | None:
        console.print(_PROMPT, style="bold green", end="")
        console.file.flush()
        return await read()

    return read_with_prompt


# ---- rendering ---------------------------------------------------------------------


class _Renderer:
    """Renders the parts of one reply at a time: ``begin``, ``part``..., ``end``."""

    def begin(self) -> None:
        """Start a new reply."""

    def part(self, part: ReplyPart) -> None:
        """Render one part."""
        raise NotImplementedError

    def end(self) -> None:
        """Finish the reply (also after a failure)."""

    def note(self, line: str) -> None:
        """Say what a plugin's platform action would have done (``ConsoleActions``)."""
        raise NotImplementedError


class _PlainRenderer(_Renderer):
    """Pipes: the final text (never the deltas), one line per attachment, no progress."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._deltas: list[str] = []
        self._have_text = False

    def begin(self) -> None:
        """Forget the previous reply."""
        self._deltas = []
        self._have_text = False

    def part(self, part: ReplyPart) -> None:
        """Write a complete part; collect deltas in case no final ``Text`` follows."""
        if isinstance(part, TextDelta):
            self._deltas.append(part.text)
            return
        if isinstance(part, Text):
            self._have_text = True
        rendered = format_part(part)
        if rendered is not None:
            self._write(rendered)

    def end(self) -> None:
        """Write streamed text whose final ``Text`` never came (e.g. a cut-off stream)."""
        if self._deltas and not self._have_text:
            self._write("".join(self._deltas))
        self._deltas = []
        self._out.flush()

    def note(self, line: str) -> None:
        """One line, as it is."""
        self._write(line)

    def _write(self, text: str) -> None:
        self._out.write(text.rstrip("\n") + "\n")


class _LiveRenderer(_Renderer):
    """Terminals: deltas as they come, rich progress bars, coloured attachments."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._streamed: list[str] = []
        self._bar: ProgressBar | None = None
        self._tasks: dict[str, TaskID] = {}

    def begin(self) -> None:
        """Forget the previous reply."""
        self._streamed = []

    def note(self, line: str) -> None:
        """One line, dimmed: it is not the bot's answer."""
        self._console.print(RichText(line, style="yellow"))

    def part(self, part: ReplyPart) -> None:
        """Render one part right away."""
        if isinstance(part, Progress):
            self._progress(part)
            return
        self._stop_bar()
        if isinstance(part, TextDelta):
            self._console.print(RichText(part.text), end="", soft_wrap=True)
            self._console.file.flush()
            self._streamed.append(part.text)
        elif isinstance(part, Text):
            self._final_text(part.text)
        elif isinstance(part, Error):
            self._close_stream()
            self._console.print(RichText(f"error: {part.message}", style="red"))
        else:
            self._close_stream()
            rendered = format_part(part)
            if rendered is not None:
                self._console.print(RichText(rendered, style="cyan"))

    def end(self) -> None:
        """Stop any progress bar and end a half-streamed line."""
        self._stop_bar()
        self._close_stream()
        self._console.file.flush()

    def _final_text(self, text: str) -> None:
        streamed = "".join(self._streamed)
        self._close_stream()
        # An outbound hook may have rewritten the answer after it was streamed.
        if text.strip() != streamed.strip():
            self._console.print(RichText(text), soft_wrap=True)

    def _close_stream(self) -> None:
        if self._streamed:
            self._console.print()
            self._streamed = []

    def _progress(self, part: Progress) -> None:
        if self._bar is None:
            self._close_stream()
            self._bar = ProgressBar(console=self._console)
            self._bar.start()
            self._tasks = {}
        description = f"{part.label} {part.detail}".strip()
        total = None if part.fraction is None else 1.0
        task = self._tasks.get(part.label)
        if task is None:
            task = self._bar.add_task(description, total=total)
            self._tasks[part.label] = task
        self._bar.update(
            task,
            description=description,
            total=total,
            completed=part.fraction or 0.0,
        )

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._tasks = {}
