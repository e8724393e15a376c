"""Stories of the router: this event arrives → this reply goes out."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bot.app import App
from bot.config import Settings
from bot.plugins import Source
from core.events import (
    Addressing,
    ButtonEvent,
    CommandEvent,
    Error,
    Image,
    MessageEvent,
    Progress,
    Text,
    TextDelta,
)
from tests.core.conftest import collect, origin, say
from tests.fakes import ScriptedChatModel, script, tool_call


def sample() -> ModuleType:
    """The sample plugin's module as loaded (loading re-imports it afresh)."""
    return sys.modules["tests.core.sample_plugin"]


async def test_a_message_streams_deltas_then_the_full_text(app: App) -> None:
    parts = await collect(app, MessageEvent(origin(), "hi"))
    deltas = [p.text for p in parts if isinstance(p, TextDelta)]
    assert len(deltas) >= 2
    assert parts[-1] == Text("hello there")
    assert "".join(deltas).strip() == "hello there"


async def test_an_empty_message_is_ignored(app: App, model: ScriptedChatModel) -> None:
    assert await collect(app, MessageEvent(origin(), "   \n")) == []
    assert model.seen == []


async def test_an_overlong_message_is_refused_with_the_limit(app: App) -> None:
    limit = app.services.settings.limits.max_message_chars
    reply = await say(app, "x" * (limit + 1))
    assert reply == f"error: Your message is {limit + 1} characters long; the limit is {limit}."


async def test_a_flood_gets_one_slow_down_notice_per_window(
    settings: Settings, model: ScriptedChatModel
) -> None:
    settings.limits.user_burst = 2
    settings.limits.user_per_second = 0.01
    async with await App.start(settings, chat_model=model) as app:
        assert await say(app, "one") == "hello there"
        assert await say(app, "two") == "hello there"
        third = await say(app, "three")
        assert third.startswith("error: Slow down: too many messages from you.")
        flood = [await collect(app, MessageEvent(origin(), f"spam {i}")) for i in range(20)]
        assert flood == [[]] * 20  # told once per window, then silence
        assert await say(app, "hi", user="someone-else") == "hello there"
    assert len(model.seen) == 3  # the refused messages never reached the model


async def test_the_server_bucket_limits_a_busy_server(
    settings: Settings, model: ScriptedChatModel
) -> None:
    settings.limits.server_burst = 2
    settings.limits.server_per_second = 0.01
    async with await App.start(settings, chat_model=model) as app:
        await say(app, "a", user="x")
        await say(app, "b", user="y")
        assert "too many messages in this server" in await say(app, "c", user="z")
        assert await say(app, "d", user="z", server="s2") == "hello there"


async def test_an_unknown_command_lists_the_commands_here(app: App) -> None:
    reply = await say(app, "/nosuch")
    assert reply.startswith("error: Unknown command /nosuch. Commands here:")
    assert "/plugins" in reply and "/calc" in reply and "/help" in reply


async def test_a_bad_option_says_which_and_why(echo_app: App) -> None:
    reply = await say(echo_app, "/slow --seconds lots")
    assert reply == "error: option seconds: must be a number, got 'lots'"
    reply = await say(echo_app, "/slow 99")
    assert reply == "error: option seconds: 99.0 is out of range (at most 60)"
    assert "missing name" in await say(echo_app, "/plugins enable", admin=True)
    assert "unknown option --colour" in await say(echo_app, "/echo hi --colour red")


async def test_a_non_admin_cannot_enable_plugins_and_is_audited(app: App) -> None:
    reply = await say(app, "/plugins disable calculator")
    assert reply == "error: Only server admins may use /plugins disable."
    identity = await app.services.storage.identify(origin())
    entries = await app.services.storage.audit_entries(identity.server_pk)
    assert [(e.action, e.target, e.allowed) for e in entries] == [
        ("/plugins disable", "calculator", False)
    ]
    assert await app.plugins.is_enabled(identity.server_pk, "calculator")


async def test_an_admin_disables_a_plugin_in_one_server_only(
    app: App, model: ScriptedChatModel
) -> None:
    reply = await say(app, "/plugins disable calculator", admin=True)
    assert reply == "Plugin calculator is now disabled in this server."
    # commands refuse in s1 and still work in s2
    assert "disabled in this server" in await say(app, "/calc 1+1")
    assert await say(app, "/calc 1+1", server="s2") == "1+1 = 2"
    # the agent's tools follow
    await say(app, "what is 1+1?")
    await say(app, "what is 1+1?", server="s2")
    assert "calculate" not in model.offered[-2]
    assert "calculate" in model.offered[-1]
    # the change is audited as allowed, and an admin can turn it back on
    identity = await app.services.storage.identify(origin())
    entries = await app.services.storage.audit_entries(identity.server_pk)
    assert entries[0].action == "/plugins disable" and entries[0].allowed
    assert "enabled" in await say(app, "/plugins enable calculator", admin=True)
    assert await say(app, "/calc 2*3") == "2*3 = 6"


async def test_plugins_list_shows_state_here(app: App) -> None:
    await say(app, "/plugins disable calculator", admin=True)
    listing = await say(app, "/plugins list")
    assert "calculator   off (set here)" in listing
    assert "admin        on  (required)" in listing
    other = await say(app, "/plugins list", server="s2")
    assert "calculator   on  (default)" in other


async def test_an_unknown_plugin_name_lists_the_known_ones(app: App) -> None:
    reply = await say(app, "/plugins enable nosuch", admin=True)
    known = "admin, calculator, code, imagine, knowledge, mcp, moderation"
    assert reply == f"error: unknown plugin 'nosuch'; known plugins: {known}"


async def test_the_admin_plugin_cannot_be_disabled(app: App) -> None:
    reply = await say(app, "/plugins disable admin", admin=True)
    assert reply == "error: plugin admin is required and cannot be disabled"


async def test_plugin_config_is_validated_and_per_server(app: App) -> None:
    assert await say(app, "/plugins config calculator decimals 3", admin=True) == (
        "calculator.decimals is now 3 in this server."
    )
    assert await say(app, "/calc 1/3") == "1/3 = 0.333"
    assert await say(app, "/calc 1/3", server="s2") == "1/3 = 0.3333333333"
    bad = await say(app, "/plugins config calculator decimals many", admin=True)
    assert bad.startswith("error: plugin calculator: setting decimals:")
    unknown = await say(app, "/plugins config calculator colour red", admin=True)
    assert unknown == (
        "error: plugin calculator has no setting 'colour' that a server can change; "
        "settings: max_length, decimals"
    )
    shown = await say(app, "/plugins config calculator", admin=True)
    assert "decimals = 3" in shown


async def test_a_disabled_plugin_contributes_no_hooks(echo_app: App) -> None:
    assert await say(echo_app, "/calc 1+1") == "1+1 = 2 [echo]"
    assert sample().events == ["in:s1"]
    await say(echo_app, "/plugins disable echo", admin=True)
    sample().events.clear()
    assert await say(echo_app, "/calc 1+1") == "1+1 = 2"
    assert sample().events == []
    assert "disabled in this server" in await say(echo_app, "/echo hi")


async def test_an_inbound_hook_can_drop_a_message(echo_app: App, model: ScriptedChatModel) -> None:
    assert await collect(echo_app, MessageEvent(origin(), "drop me")) == []
    assert model.seen == []


FAILED = re.compile(
    r"error: The echo plugin failed \(error id ([0-9a-f]{8})\); the problem was logged\."
)


async def test_a_failing_plugin_gets_a_short_error_and_the_bot_goes_on(
    echo_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await say(echo_app, "/boom")
    found = FAILED.fullmatch(reply)
    assert found, reply
    assert "kaboom" not in reply  # the exception's text stays in the log
    logged = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert logged and "kaboom" in logged[0].getMessage()
    assert await say(echo_app, "/echo still here") == "still here [echo]"


async def test_a_plugin_call_that_times_out_is_cut_off(echo_app: App) -> None:
    echo_app.services.settings.plugins.timeouts["echo"] = 0.05
    reply = await say(echo_app, "/slow 5")
    assert FAILED.fullmatch(reply), reply


async def test_turns_in_one_conversation_stay_in_order(echo_app: App) -> None:
    first = asyncio.create_task(say(echo_app, "/slow 0.2"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(say(echo_app, "/slow 0"))
    other = asyncio.create_task(say(echo_app, "/slow 0", user="u2"))
    await asyncio.gather(first, second, other)
    events = [e for e in sample().events if not e.startswith("in:")]
    assert events.index("end:u2") < events.index("end:u1")  # other conversation overtook
    assert events[-2:] == ["start:u1", "end:u1"]  # the second u1 turn waited for the first


async def test_a_button_reaches_its_plugin(echo_app: App) -> None:
    parts = await collect(echo_app, ButtonEvent(origin(), "echo:again:42"))
    assert parts == [Text("pressed 42 [echo]")]
    parts = await collect(echo_app, ButtonEvent(origin(), "nosuch:reroll:7"))
    assert parts == [Error("This button no longer works here.")]


async def test_progress_parts_pass_through(echo_app: App) -> None:
    parts = await collect(echo_app, CommandEvent(origin(), "slow", "0"))
    assert parts == [Progress("sleeping"), Text("slept 0.0 [echo]")]


async def test_structured_options_are_validated_like_text(echo_app: App) -> None:
    ok = await collect(echo_app, CommandEvent(origin(), "slow", options={"seconds": 0}))
    assert ok[-1] == Text("slept 0.0 [echo]")
    bad = await collect(echo_app, CommandEvent(origin(), "slow", options={"seconds": 61}))
    assert bad == [Error("option seconds: 61.0 is out of range (at most 60)")]
    sub = CommandEvent(
        origin(admin=True), "plugins", subcommand="disable", options={"name": "echo"}
    )
    assert await collect(echo_app, sub) == [
        Text("Plugin echo is now disabled in this server. [echo]")
    ]


async def test_the_system_prompt_is_per_server_and_admin_only(
    app: App, model: ScriptedChatModel
) -> None:
    assert await say(app, "/prompt set Talk like a pirate.") == (
        "error: Only server admins may use /prompt set."
    )
    await say(app, "/prompt set Talk like a pirate.", admin=True)
    await say(app, "hi")
    await say(app, "hi", server="s2")
    assert str(model.seen[-2][0].content).startswith("Talk like a pirate.")
    assert not str(model.seen[-1][0].content).startswith("Talk like a pirate.")
    assert "server s1" in str(model.seen[-2][0].content)


async def test_loading_is_atomic(echo_app: App) -> None:
    manager = echo_app.plugins
    assert sample().started.is_set()
    old = manager.loaded["echo"]
    manager.sources["echo"] = Source("echo", "tests.core.broken_plugin")
    with pytest.raises(Exception, match="cannot start"):
        await manager.reload("echo")
    assert manager.loaded["echo"] is old  # the old version keeps running
    assert await say(echo_app, "/echo ok") == "ok [echo]"
    await manager.unload("echo")
    assert old.tasks[0].cancelled()
    assert "Unknown command /echo" in await say(echo_app, "/echo ok")


async def test_tools_get_the_callers_context_from_the_core(settings: Settings) -> None:
    model = ScriptedChatModel(messages=script(tool_call("whoami"), "done", repeat=True))
    async with await App.start(settings, chat_model=model) as app:
        app.plugins.sources["echo"] = Source("echo", "tests.core.sample_plugin")
        await app.plugins.load("echo")
        await say(app, "who am I?", user="ada", server="lab")
        assert model.seen[1][-1].content == "user ada in server lab"
        await say(app, "and me?", user="bob", server="s9")
        assert model.seen[3][-1].content == "user bob in server s9"


async def test_a_tool_can_show_the_user_what_it_made(settings: Settings) -> None:
    model = ScriptedChatModel(
        messages=script(tool_call("snapshot", caption="a cat"), "Here it is.", repeat=True)
    )
    async with await App.start(settings, chat_model=model) as app:
        app.plugins.sources["echo"] = Source("echo", "tests.core.sample_plugin")
        await app.plugins.load("echo")
        parts = await collect(app, MessageEvent(origin(), "draw a cat"))
    assert Image(Path("/tmp/picture.png"), "a cat") in parts
    assert parts[-1] == Text("Here it is. [echo]")
    assert model.seen[1][-1].content == "made a picture"


async def test_listeners_hear_about_plugin_changes(app: App) -> None:
    heard: list[int | None] = []

    async def listener(server_pk: int | None) -> None:
        heard.append(server_pk)

    app.plugins.add_listener(listener)
    await say(app, "/plugins disable calculator", admin=True)
    identity = await app.services.storage.identify(origin())
    assert heard == [identity.server_pk]
    await app.plugins.reload("calculator")
    assert heard == [identity.server_pk, None]


async def test_an_admin_marks_a_chat_channel(app: App) -> None:
    assert "Only server admins" in await say(app, "/channel chat on")
    assert await say(app, "/channel chat on", admin=True) == (
        "I will answer every message in this channel."
    )
    assert await app.router.answers(MessageEvent(origin(), "hi", addressing=Addressing()))
    assert not await app.router.answers(
        MessageEvent(origin(channel="c2"), "hi", addressing=Addressing())
    )
    assert "option mode: 'maybe' is not one of: on, off" in await say(
        app, "/channel chat maybe", admin=True
    )


async def test_a_button_is_not_stuck_behind_a_long_command(echo_app: App) -> None:
    slow = asyncio.create_task(say(echo_app, "/slow 0.5"))
    await asyncio.sleep(0.05)
    parts = await asyncio.wait_for(collect(echo_app, ButtonEvent(origin(), "echo:again:1")), 0.3)
    assert parts == [Text("pressed 1 [echo]")]
    assert not slow.done()
    await slow
