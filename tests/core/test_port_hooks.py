"""The plugin port's newer parts: buffered outbound hooks and their order, requirements on
tools, platform actions in hooks, and attachments capped by the core."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bot.app import App
from bot.config import Settings
from bot.plugins import Source
from core.adapter import DELETE
from core.errors import InputRejected
from core.events import (
    Attachment,
    CommandEvent,
    Error,
    MessageEvent,
    Origin,
    ReplyPart,
    Text,
    TextDelta,
)
from tests.core.conftest import collect, origin
from tests.fakes import ScriptedChatModel, script

LONG = " ".join(f"word{n}" for n in range(120))  # about 900 characters, several holds


class Recorder:
    """A platform's ``Actions`` that can delete messages and remembers what it did."""

    capabilities = frozenset({DELETE})

    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        self.deleted.append(message_id)

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        raise NotImplementedError

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        raise NotImplementedError


@pytest.fixture
async def gated(settings: Settings, model: ScriptedChatModel) -> AsyncIterator[App]:
    """The bot with the gate and echo sample plugins loaded."""
    async with await App.start(settings, chat_model=model) as app:
        for name, module in (
            ("gate", "tests.core.gate_plugin"),
            ("echo", "tests.core.sample_plugin"),
        ):
            app.plugins.sources[name] = Source(name, module)
            await app.plugins.load(name)
        yield app


def _gate() -> Any:
    return sys.modules["tests.core.gate_plugin"]


async def test_a_clean_streamed_answer_goes_out_whole(gated: App, model: ScriptedChatModel) -> None:
    model.messages = script(LONG)

    parts = await collect(gated, MessageEvent(origin(), "talk to me"))

    streamed = "".join(p.text for p in parts if isinstance(p, TextDelta))
    final = [p.text for p in parts if isinstance(p, Text)]
    assert final == [LONG + " [echo]"]
    assert streamed.strip() == LONG
    assert len([p for p in parts if isinstance(p, TextDelta)]) >= 3  # released as it grew


async def test_a_buffered_hook_stops_a_reply_before_the_user_sees_the_line(
    gated: App, model: ScriptedChatModel
) -> None:
    model.messages = script(LONG + " forbidden " + LONG)

    parts = await collect(gated, MessageEvent(origin(), "talk to me"))

    shown = "".join(p.text for p in parts if isinstance(p, TextDelta))
    assert "forbidden" not in shown
    assert LONG.startswith(shown.strip()[:200])
    assert parts[-1] == Error("This answer was withheld.")
    assert not any(isinstance(p, Text) for p in parts)


async def test_a_buffered_hook_replaces_the_final_text(
    gated: App, model: ScriptedChatModel
) -> None:
    model.messages = script("my favourite colour is blue")

    parts = await collect(gated, MessageEvent(origin(), "colour?"))

    assert [p.text for p in parts if isinstance(p, Text)] == ["my favourite color is blue [echo]"]
    assert "colour" not in "".join(p.text for p in parts if isinstance(p, TextDelta))


async def test_outbound_hooks_run_in_priority_order(gated: App) -> None:
    _gate().order.clear()

    await collect(gated, MessageEvent(origin(), "hi"))

    assert _gate().order[:2] == ["gate", "last"]  # 10 before echo's 100 before 200


async def test_admin_only_tools_are_offered_to_admins_only(
    gated: App, model: ScriptedChatModel
) -> None:
    await collect(gated, MessageEvent(origin(user="member"), "hi"))
    await collect(gated, MessageEvent(origin(user="boss", admin=True), "hi"))

    member, boss = model.offered[-2], model.offered[-1]
    assert "purge" not in member and "purge" in boss


async def test_a_tool_that_needs_a_capability_is_offered_only_where_the_platform_has_it(
    gated: App, model: ScriptedChatModel
) -> None:
    await collect(gated, MessageEvent(origin(), "hi"))
    async for _ in gated.router.handle(MessageEvent(origin(), "hi"), actions=Recorder()):
        pass

    assert "tidy" not in model.offered[-2] and "tidy" in model.offered[-1]


async def test_an_inbound_hook_acts_through_the_platform(
    gated: App, model: ScriptedChatModel
) -> None:
    platform = Recorder()
    seen_before = len(model.seen)

    event = MessageEvent(origin(), "buy spam now", message_id="m-42")
    parts = [part async for part in gated.router.handle(event, actions=platform)]

    assert parts == [] and platform.deleted == ["m-42"]
    assert len(model.seen) == seen_before  # dropped before the model


async def test_attachments_are_capped_before_they_are_downloaded(settings: Settings) -> None:
    settings.limits.max_attachment_mb = 1.0
    fetched: list[str] = []

    async def fetch_big() -> bytes:
        fetched.append("big")
        return b"x" * (2 * 1024 * 1024)

    async def fetch_liar() -> bytes:  # the platform said 10 bytes; 2 MB arrive
        fetched.append("liar")
        return b"x" * (2 * 1024 * 1024)

    big = Attachment("big.bin", size=2 * 1024 * 1024, fetch=fetch_big, max_bytes=1024 * 1024)
    liar = Attachment("liar.bin", size=10, fetch=fetch_liar, max_bytes=1024 * 1024)

    with pytest.raises(InputRejected, match=r"'big.bin' is 2.0 MB; the limit is 1.0 MB"):
        await big.read()
    with pytest.raises(InputRejected, match=r"'liar.bin' is 2.0 MB"):
        await liar.read()
    assert fetched == ["liar"]  # the big one was refused without a download


async def test_a_command_reads_its_files_through_the_cap_of_the_config(gated: App) -> None:
    async def fetch() -> bytes:
        return b"hello"

    async def fetch_big() -> bytes:
        raise AssertionError("a file over the limit must not be downloaded")

    small = Attachment("notes.txt", "text/plain", 5, fetch=fetch)
    big = Attachment("movie.mkv", "video/x-matroska", 30 * 1024 * 1024, fetch=fetch_big)

    ok = await collect(gated, CommandEvent(origin(), "upload", attachments=(small,)))
    refused = await collect(gated, CommandEvent(origin(), "upload", attachments=(big,)))

    assert ok == [Text("notes.txt: 5 bytes [echo]")]
    assert refused == [Error("The file 'movie.mkv' is 30.0 MB; the limit is 25.0 MB.")]
