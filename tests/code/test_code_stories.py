"""Stories of the code plugin: an admin turns it on, /run prints what the code prints, a
plot comes back as an image, the agent gets run_python only where the plugin is on, and
each user's runs are limited. Real bubblewrap underneath."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.app import App
from core.events import CommandEvent, Image, Text
from sandbox import Sandbox
from tests.core.conftest import collect, isolated_settings, origin, say
from tests.fakes import ScriptedChatModel, script, tool_call

WHY_NOT = Sandbox().why_unavailable()
if WHY_NOT is not None:
    if os.environ.get("CI"):  # CI installs bubblewrap (.ci/run): there this must run
        raise RuntimeError(f"CI has no sandbox: {WHY_NOT}")
    pytest.skip(f"no sandbox here: {WHY_NOT}", allow_module_level=True)

pytestmark = pytest.mark.asyncio(loop_scope="module")
MODEL = ScriptedChatModel(messages=script("ok", repeat=True))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    """A bot where servers named ``lab*`` will turn the plugin on."""
    settings = isolated_settings(
        tmp_path_factory.mktemp("code") / "data", config={"code": {"runs_per_minute": 3}}
    )
    async with await App.start(settings, chat_model=MODEL) as started:
        yield started


async def _enable(app: App, server: str) -> None:
    said = await say(app, "/plugins enable code", server=server, admin=True)
    assert said == "Plugin code is now enabled in this server.", said


async def test_run_prints_the_sum_where_an_admin_enabled_it(app: App) -> None:
    refused = await say(app, "/run print(2 + 3)", server="plain")
    assert refused.startswith("error: /run belongs to the code plugin, which is disabled"), refused
    await _enable(app, "lab1")
    assert await say(app, "/run print(sum(range(1, 101)))", server="lab1") == "```\n5050\n```"


async def test_a_code_block_is_run_and_errors_come_back_as_output(app: App) -> None:
    await _enable(app, "lab2")
    block = "/run ```python\nx = 6 * 7\nprint(x)\n```"
    assert await say(app, block, server="lab2") == "```\n42\n```"
    failed = await say(app, "/run 1/0", server="lab2")
    assert "ZeroDivisionError" in failed and failed.endswith("(exit code 1)"), failed


async def test_a_matplotlib_plot_comes_back_as_an_image(app: App) -> None:
    await _enable(app, "lab3")
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nprint('plotted')"
    parts = await collect(app, CommandEvent(origin(server="lab3"), "run", code))
    texts = [p.text for p in parts if isinstance(p, Text)]
    [image] = [p for p in parts if isinstance(p, Image)]
    assert texts == ["```\nplotted\n```\n(1 image)"], texts
    assert image.path.read_bytes().startswith(b"\x89PNG") and image.caption == "figure_1.png"


async def test_each_user_has_a_few_runs_a_minute(app: App) -> None:
    await _enable(app, "lab4")
    for n in range(3):
        assert await say(app, f"/run print({n})", server="lab4", user="eve") == f"```\n{n}\n```"
    refused = await say(app, "/run print(3)", server="lab4", user="eve")
    assert refused.startswith("error: You may run code 3 times a minute"), refused
    assert await say(app, "/run print(4)", server="lab4", user="bob") == "```\n4\n```"


async def test_the_agent_gets_run_python_only_where_the_plugin_is_on(app: App) -> None:
    MODEL.messages = script(tool_call("run_python", code="print(2 ** 10)"), "It is 1024.")
    await _enable(app, "lab5")
    answer = await say(app, "compute 2 to the 10th in python", server="lab5")
    assert answer == "It is 1024.", answer
    assert "run_python" in MODEL.offered[-2]
    tool_message = MODEL.seen[-1][-1]
    assert "1024" in str(tool_message.content), tool_message
    MODEL.messages = script("ok", repeat=True)
    await say(app, "compute 2 to the 10th in python", server="elsewhere")
    assert "run_python" not in MODEL.offered[-1]


async def test_escapes_through_the_command_are_contained(app: App) -> None:
    await _enable(app, "lab6")
    said = await say(
        app, "/run import socket; socket.create_connection(('127.0.0.1', 5432))", server="lab6"
    )
    assert "OSError" in said or "ConnectionRefusedError" in said, said
    assert await say(app, "/run print('alive')", server="lab6") == "```\nalive\n```"


async def test_output_that_fakes_a_fence_stays_inside_the_block(app: App) -> None:
    await _enable(app, "lab7")
    said = await say(app, "/run print('```\\n@everyone')", server="lab7")
    assert said.count("```") == 2 and said.startswith("```\n``\u200b`"), said
