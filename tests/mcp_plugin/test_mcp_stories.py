"""Stories of the mcp plugin against real MCP servers (the SDK's FastMCP): one over stdio
that the bot starts, one over streamable HTTP on loopback. Admins choose per server; the
agent sees exactly the tools enabled there; slow, crashing, dead and garbage servers give
the model a tool error and the admin a line in /mcp list, never a failed turn."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from langchain_core.messages import ToolMessage

from bot.app import App
from core.events import Image, MessageEvent
from tests.core.conftest import collect, isolated_settings, origin, say
from tests.fakes import ScriptedChatModel, script, tool_call
from tests.mcp_plugin.conftest import HttpServer, free_port, stdio_server

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]
MODEL = ScriptedChatModel(messages=script("ok", repeat=True))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory, http_server: HttpServer
) -> AsyncIterator[App]:
    """A bot with four MCP servers configured: the stdio test server, the HTTP one, a
    port nothing listens on, and a command that prints garbage and exits."""
    os.environ["MCP_TEST_GIVEN"] = "given-value"
    os.environ["MCP_TEST_BOT_SECRET"] = "never-passed-on"
    servers = {
        "calc": stdio_server(
            timeout_s=2.0, env={"MODE": "test"}, env_from={"GIVEN": "MCP_TEST_GIVEN"}
        ),
        "web": {"transport": "http", "url": http_server.url, "timeout_s": 5.0},
        "gone": {"transport": "http", "url": f"http://127.0.0.1:{free_port()}/mcp"},
        "junk": {
            "transport": "stdio",
            "command": sys.executable,
            "args": ["-c", "print('this is not MCP'); print('{broken json')"],
        },
    }
    settings = isolated_settings(
        tmp_path_factory.mktemp("mcp") / "data",
        config={"mcp": {"servers": servers, "connect_timeout_s": 10.0}},
    )
    async with await App.start(settings, chat_model=MODEL) as started:
        yield started
    for name in ("MCP_TEST_GIVEN", "MCP_TEST_BOT_SECRET"):
        os.environ.pop(name, None)


async def _enable(app: App, name: str, server: str) -> str:
    said = await say(app, f"/mcp enable {name}", server=server, admin=True)
    assert said.startswith(f"MCP server {name} is now on in this server"), said
    return said


def _tool_result() -> str:
    """What the model was told by the last tool it called."""
    message = next(m for m in reversed(MODEL.seen[-1]) if isinstance(m, ToolMessage))
    return str(message.content)


async def test_an_enabled_stdio_tool_is_called_there_and_nowhere_else(app: App) -> None:
    said = await _enable(app, "calc", "lab1")
    assert "“add”" in said and "“dot”" in said, said
    MODEL.messages = script(tool_call("calc_add", a=2, b=40), "The sum is 42.")
    answer = await say(app, "add 2 and 40", server="lab1")
    assert answer == "The sum is 42.", answer
    assert "calc_add" in MODEL.offered[-2]
    assert _tool_result() == "42"

    MODEL.messages = script("ok", repeat=True)
    await say(app, "add 2 and 40", server="elsewhere")
    assert not [name for name in MODEL.offered[-1] if name.startswith("calc_")]


async def test_a_forged_call_in_a_server_without_it_is_refused(app: App) -> None:
    await _enable(app, "calc", "lab2")
    MODEL.messages = script("ok", repeat=True)
    await say(app, "hello", server="lab2")  # the tools exist (built) now
    MODEL.messages = script(tool_call("calc_add", a=1, b=1), "done")
    await say(app, "add", server="plain2")
    assert "no tool named 'calc_add'" in _tool_result(), _tool_result()


async def test_an_image_result_reaches_the_user_as_an_image(app: App) -> None:
    await _enable(app, "calc", "lab3")
    MODEL.messages = script(tool_call("calc_dot"), "Here is a dot.")
    parts = await collect(app, MessageEvent(origin(server="lab3"), "draw a dot"))
    [image] = [p for p in parts if isinstance(p, Image)]
    assert image.path.read_bytes().startswith(b"\x89PNG") and image.caption == "calc/dot"
    assert "an image, shown to the user" in _tool_result()


async def test_a_slow_tool_gives_the_model_a_timeout_error(app: App) -> None:
    await _enable(app, "calc", "lab4")
    MODEL.messages = script(tool_call("calc_nap", seconds=30), "It was too slow.")
    answer = await say(app, "nap", server="lab4")
    assert answer == "It was too slow.", answer
    assert _tool_result() == (
        "error: the tool calc_nap failed: nap on calc took longer than 2 s"
    ), _tool_result()
    MODEL.messages = script(tool_call("calc_add", a=1, b=2), "3")
    await say(app, "add", server="lab4")
    assert _tool_result() == "3"  # the connection survived the slow call


async def test_a_crash_mid_call_is_a_tool_error_and_the_next_call_reconnects(app: App) -> None:
    await _enable(app, "calc", "lab5")
    MODEL.messages = script(tool_call("calc_crash"), "It broke.")
    assert await say(app, "crash it", server="lab5") == "It broke."
    assert _tool_result().startswith(
        "error: the tool calc_crash failed: the MCP server calc failed during the call"
    ), _tool_result()
    MODEL.messages = script(tool_call("calc_add", a=20, b=22), "42")
    await say(app, "add", server="lab5")
    assert _tool_result() == "42"


async def test_a_changed_tool_list_is_offered_on_the_next_turn(app: App) -> None:
    await _enable(app, "calc", "lab6")
    MODEL.messages = script(tool_call("calc_grow"), "Grown.")
    await say(app, "grow", server="lab6")
    assert "calc_multiply" not in MODEL.offered[-2]
    for _ in range(50):
        MODEL.messages = script("ok", repeat=True)
        await say(app, "hi", server="lab6")
        if "calc_multiply" in MODEL.offered[-1]:
            break
        await asyncio.sleep(0.1)
    assert "calc_multiply" in MODEL.offered[-1]


async def test_admins_turn_single_tools_and_servers_off(app: App) -> None:
    await _enable(app, "calc", "lab7")
    said = await say(app, "/mcp tools calc deny add", server="lab7", admin=True)
    assert said == "Tool “add” of MCP server calc is now off in this server.", said
    MODEL.messages = script("ok", repeat=True)
    await say(app, "hi", server="lab7")
    assert "calc_add" not in MODEL.offered[-1] and "calc_dot" in MODEL.offered[-1]
    listing = await say(app, "/mcp tools calc", server="lab7", admin=True)
    assert "• “add” [off]: “Add two numbers.”" in listing, listing
    assert "“add (off)”" in await say(app, "/mcp list", server="lab7")
    await say(app, "/mcp tools calc allow add", server="lab7", admin=True)
    await say(app, "hi", server="lab7")
    assert "calc_add" in MODEL.offered[-1]
    said = await say(app, "/mcp disable calc", server="lab7", admin=True)
    assert said == "MCP server calc is now off in this server.", said
    await say(app, "hi", server="lab7")
    assert not [name for name in MODEL.offered[-1] if name.startswith("calc_")]
    refused = await say(app, "/mcp tools calc deny nothing", server="lab7", admin=True)
    assert refused.startswith("error: calc has no tool “nothing”; it has “add”"), refused


async def test_where_the_plugin_is_disabled_its_servers_give_nothing(app: App) -> None:
    await _enable(app, "calc", "lab15")
    said = await say(app, "/plugins disable mcp", server="lab15", admin=True)
    assert said == "Plugin mcp is now disabled in this server.", said
    MODEL.messages = script(tool_call("calc_add", a=1, b=1), "done")
    await say(app, "add", server="lab15")
    assert not [name for name in MODEL.offered[-2] if name.startswith("calc_")]
    assert "no tool named 'calc_add'" in _tool_result(), _tool_result()
    refused = await say(app, "/mcp list", server="lab15")
    assert refused.startswith("error: /mcp belongs to the mcp plugin, which is disabled"), refused


async def test_a_non_admin_cannot_enable(app: App) -> None:
    refused = await say(app, "/mcp enable calc", server="lab8")
    assert refused == "error: Only server admins may use /mcp enable.", refused
    assert "calc (stdio): off here" in await say(app, "/mcp list", server="lab8")


async def test_a_name_that_is_not_configured_is_refused_with_the_list(app: App) -> None:
    refused = await say(app, "/mcp enable shell", server="lab9", admin=True)
    assert refused == (
        "error: There is no MCP server named “shell”; configured: calc, gone, junk, web."
    ), refused


async def test_the_stdio_server_gets_only_its_own_environment(app: App) -> None:
    await _enable(app, "calc", "lab10")
    MODEL.messages = script(tool_call("calc_secret"), "seen")
    await say(app, "env?", server="lab10")
    names = set(_tool_result().split(","))
    assert {"MODE", "GIVEN"} <= names, names
    assert not [n for n in names if n.startswith(("MCP_TEST", "ATELIER", "PG", "REDIS"))], names


async def test_a_long_result_is_cut_before_the_model(app: App) -> None:
    await _enable(app, "calc", "lab11")
    MODEL.messages = script(tool_call("calc_shout", times=50_000), "loud")
    await say(app, "shout", server="lab11")
    result = _tool_result()
    assert result.startswith("A" * 4000 + "\n[cut: 46000 more characters not shown]"), result[-80:]


async def test_the_http_server_killed_and_restarted_is_reconnected(
    app: App, http_server: HttpServer
) -> None:
    said = await _enable(app, "web", "lab12")
    assert "“add”" in said, said
    MODEL.messages = script(tool_call("web_add", a=1, b=1), "2")
    await say(app, "add", server="lab12")
    assert _tool_result() == "2"
    http_server.kill()
    MODEL.messages = script(tool_call("web_add", a=2, b=2), "down")
    await say(app, "add", server="lab12")
    assert _tool_result().startswith("error: the tool web_add failed: the MCP server web"), (
        _tool_result()
    )
    listing = await say(app, "/mcp list", server="lab12", admin=True)
    assert "web (http): on here; unreachable (" in listing, listing
    http_server.start()
    MODEL.messages = script(tool_call("web_add", a=3, b=4), "7")
    await say(app, "add", server="lab12")
    assert _tool_result() == "7"


async def test_dead_and_garbage_servers_are_a_clear_line_not_a_failed_turn(app: App) -> None:
    for name in ("gone", "junk"):
        said = await say(app, f"/mcp enable {name}", server="lab13", admin=True)
        assert said.startswith(
            f"MCP server {name} is now on in this server, but it is not reachable yet: "
            "unreachable ("
        ), said
    listing = await say(app, "/mcp list", server="lab13", admin=True)
    assert "gone (http): on here; unreachable (" in listing, listing
    assert "junk (stdio): on here; unreachable (" in listing, listing
    plain = await say(app, "/mcp list", server="lab13")
    assert "gone (http): on here; unreachable; next try in" in plain, plain
    MODEL.messages = script("Still here.")
    assert await say(app, "hello", server="lab13") == "Still here."


async def test_unloading_the_plugin_ends_the_stdio_process(app: App) -> None:
    await _enable(app, "calc", "lab14")
    MODEL.messages = script(tool_call("calc_add", a=1, b=1), "2")
    await say(app, "add", server="lab14")
    assert _children("tests.mcp_plugin.server stdio")
    await app.plugins.unload("mcp")
    for _ in range(50):
        if not _children("tests.mcp_plugin.server stdio"):
            break
        await asyncio.sleep(0.1)
    assert not _children("tests.mcp_plugin.server stdio")
    await app.plugins.load("mcp")


def _children(command: str) -> list[int]:
    """Processes of this test run whose command line contains ``command``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = (entry / "stat").read_text().split(") ", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if command in cmdline and int(parent) == os.getpid():
            found.append(int(entry.name))
    return found
