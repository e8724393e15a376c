"""The console adapter: lines typed (or piped) in → replies written out.

The first half drives a real App (storage on a temporary SQLite file, the built-in
plugins) whose chat model is scripted; the second half drives the renderer with a
scripted router to pin down how each kind of reply part looks.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from bot.adapters.console import console_origin, parse_line, run_console
from bot.plugin_loading import discover_plugins
from core.errors import CommandError
from core.events import (
    Button,
    Buttons,
    CommandEvent,
    Error,
    Event,
    File,
    Image,
    MessageEvent,
    Progress,
    ReplyPart,
    Text,
    TextDelta,
)

if TYPE_CHECKING:
    from bot.app import App


async def _chat(app: App, text: str, *, admin: bool = False) -> tuple[int, str]:
    """Pipe ``text`` into a console session; return its exit code and stdout."""
    stdout = io.StringIO()
    code = await run_console(
        app,
        server="s1",
        user="u1",
        admin=admin,
        stdin=io.StringIO(text),
        stdout=stdout,
    )
    return code, stdout.getvalue()


# ---- with the real app -------------------------------------------------------------


async def test_a_message_is_answered_with_the_models_text_on_its_own_line(
    app: App, fake_answer: str
) -> None:
    code, out = await _chat(app, "hello\n")

    assert code == 0
    assert out == fake_answer + "\n"


async def test_blank_lines_are_ignored(app: App, fake_answer: str) -> None:
    code, out = await _chat(app, "\n   \nhello\n\n\t\n")

    assert code == 0
    assert out.splitlines() == [fake_answer]


async def test_each_line_gets_its_own_answer(app: App, fake_answer: str) -> None:
    _, out = await _chat(app, "hello\nhow are you?\n")

    assert out.splitlines() == [fake_answer, fake_answer]


async def test_plugins_list_lists_the_plugins(app: App) -> None:
    code, out = await _chat(app, "/plugins list\n")

    assert code == 0
    for name in discover_plugins():
        assert name in out


async def test_an_unknown_command_answers_with_the_commands_there_are(app: App) -> None:
    code, out = await _chat(app, "/nosuchcommand\n")

    assert code == 0
    assert "/plugins" in out


async def test_only_admins_may_disable_a_plugin(app: App) -> None:
    _, as_user = await _chat(app, "/plugins disable calculator\n", admin=False)
    _, as_admin = await _chat(app, "/plugins disable calculator\n", admin=True)

    assert as_user.startswith("error: ")
    assert not as_admin.startswith("error: ")
    assert "calculator" in as_admin


async def test_the_input_may_end_without_a_newline(app: App, fake_answer: str) -> None:
    code, out = await _chat(app, "hello")

    assert (code, out) == (0, fake_answer + "\n")


# ---- rendering, with a scripted router ---------------------------------------------


class _ScriptedRouter:
    """Answers every event with what ``script`` yields for it, recording the events."""

    def __init__(self, script: Callable[[Event], AsyncIterator[ReplyPart]]) -> None:
        self.script = script
        self.events: list[Event] = []

    async def handle(self, event: Event, *, actions: object = None) -> AsyncIterator[ReplyPart]:
        """Record the event, then replay the script."""
        self.events.append(event)
        async for part in self.script(event):
            yield part


class _ScriptedApp:
    def __init__(self, script: Callable[[Event], AsyncIterator[ReplyPart]]) -> None:
        self.router = _ScriptedRouter(script)


def _scripted(script: Callable[[Event], AsyncIterator[ReplyPart]]) -> tuple[App, _ScriptedRouter]:
    fake = _ScriptedApp(script)
    return cast("App", fake), fake.router


async def _every_kind(event: Event) -> AsyncIterator[ReplyPart]:
    yield Progress("drawing", 0.5, "step 10/20")
    yield TextDelta("Here ")
    yield TextDelta("you are.")
    yield Text("Here you are.")
    yield Image(Path("/data/img.png"))
    yield File(Path("/data/notes.txt"))
    yield Buttons((Button("Again", "imagine:again:1"), Button("Upscale", "imagine:up:1")))
    yield Progress("drawing", 1.0)
    yield Error("quota used up")


async def test_piped_replies_are_written_one_part_per_line() -> None:
    app, _ = _scripted(_every_kind)

    code, out = await _chat(app, "draw a cat\n")

    assert code == 0
    assert out.splitlines() == [
        "Here you are.",
        "[image] /data/img.png",
        "[file] /data/notes.txt",
        "[buttons] Again (imagine:again:1) | Upscale (imagine:up:1)",
        "error: quota used up",
    ]


async def test_streamed_text_without_a_final_text_is_still_written() -> None:
    async def cut_off(event: Event) -> AsyncIterator[ReplyPart]:
        yield TextDelta("half ")
        yield TextDelta("an answer")

    app, _ = _scripted(cut_off)

    _, out = await _chat(app, "hi\n")

    assert out == "half an answer\n"


async def test_a_failing_reply_prints_one_error_line_and_the_session_goes_on() -> None:
    async def flaky(event: Event) -> AsyncIterator[ReplyPart]:
        if isinstance(event, MessageEvent) and event.text == "boom":
            raise RuntimeError("database on fire")
        yield Text(f"echo {cast(MessageEvent, event).text}")

    app, _ = _scripted(flaky)

    code, out = await _chat(app, "boom\nagain\n")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("error: ")
    assert "RuntimeError" in lines[0]
    assert "Traceback" not in out
    assert lines[1:] == ["echo again"]


async def test_a_user_error_is_shown_with_its_message() -> None:
    async def refuse(event: Event) -> AsyncIterator[ReplyPart]:
        raise CommandError("no such option")
        yield Text("unreachable")

    app, _ = _scripted(refuse)

    _, out = await _chat(app, "/x\n")

    assert out == "error: no such option\n"


async def test_lines_become_events_from_the_console_origin() -> None:
    async def silent(event: Event) -> AsyncIterator[ReplyPart]:
        return
        yield Text("unreachable")

    app, router = _scripted(silent)

    await _chat(app, "hello there\n/plugins enable  calculator \n", admin=True)

    origin = console_origin("s1", "u1", admin=True)
    assert router.events == [
        MessageEvent(origin, text="hello there", message_id="console-1"),  # numbered
        CommandEvent(origin, name="plugins", text="enable  calculator"),
    ]
    assert origin.platform == "console"
    assert (origin.server_id, origin.server_name) == ("s1", "s1")
    assert (origin.user_id, origin.user_name, origin.is_admin) == ("u1", "u1", True)


def test_parse_line_tells_commands_from_messages() -> None:
    origin = console_origin("s", "u", admin=False)

    assert parse_line(origin, "  \n") is None
    assert parse_line(origin, "2 / 3\n") == MessageEvent(origin, text="2 / 3")
    assert parse_line(origin, "/imagine a red fox\n") == CommandEvent(
        origin, name="imagine", text="a red fox"
    )
    assert parse_line(origin, "/help") == CommandEvent(origin, name="help", text="")
    assert parse_line(origin, "/") == CommandEvent(origin, name="help", text="")


async def test_an_interactive_session_streams_and_shows_a_prompt() -> None:
    app, _ = _scripted(_every_kind)
    stdout = io.StringIO()

    code = await run_console(
        app,
        server="s1",
        user="u1",
        admin=False,
        stdin=io.StringIO("draw a cat\n"),
        stdout=stdout,
        interactive=True,
    )

    out = stdout.getvalue()
    assert code == 0
    assert "you> " in out
    assert out.count("Here you are.") == 1  # streamed once, not repeated by the final Text
    assert "[image] /data/img.png" in out
    assert "error: quota used up" in out


async def test_waiting_for_input_does_not_block_the_event_loop() -> None:
    async def echo(event: Event) -> AsyncIterator[ReplyPart]:
        yield Text("ok")

    app, _ = _scripted(echo)
    read_fd, write_fd = os.pipe()
    stdout = io.StringIO()
    with os.fdopen(read_fd, "r") as stdin:
        session = asyncio.create_task(
            run_console(app, server="s", user="u", admin=False, stdin=stdin, stdout=stdout)
        )
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not session.done()
        assert ticks == 5
        os.write(write_fd, b"hi\n")
        os.close(write_fd)
        assert await asyncio.wait_for(session, timeout=10) == 0
    assert stdout.getvalue() == "ok\n"
