"""Stories of failure: nothing internal reaches users, nothing is lost, loading stays sane."""

from __future__ import annotations

import asyncio
import importlib
import re
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from bot.app import App
from bot.config import Settings
from bot.plugins import Source
from core.errors import PluginError
from core.events import ButtonEvent, Error, MessageEvent, Text
from tests.core.conftest import collect, origin, say
from tests.fakes import ScriptedChatModel, script, tool_call

ERROR_ID = re.compile(r"\(error id ([0-9a-f]{8})\)")


class BrokenModel(ScriptedChatModel):
    """Fails the way a crashed llama.cpp or a dropped server connection does."""

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.seen.append(list(messages))
        raise ConnectionResetError("llama server at 10.0.0.7:8080 reset the connection")
        yield  # pragma: no cover - makes this an async generator


async def test_a_tool_failure_reaches_the_model_without_internals(
    echo_app: App, model: ScriptedChatModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.messages = script(tool_call("lookup", key="rules"), "I could not look that up.")
    assert await say(echo_app, "what are the rules?") == "I could not look that up. [echo]"
    told = str(model.seen[-1][-1].content)
    assert told.startswith("error: the tool lookup failed (error id ")
    assert "hunter2" not in told and "10.0.0.5" not in told
    error_id = ERROR_ID.search(told)
    assert error_id and any(
        error_id.group(1) in r.getMessage() and r.exc_info for r in caplog.records
    )


async def test_an_expected_tool_error_is_logged_in_one_line(
    app: App, model: ScriptedChatModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.messages = script(tool_call("calculate", expression="1/0"), "No.")
    caplog.set_level("INFO")
    assert await say(app, "1/0?") == "No."
    lines = [r for r in caplog.records if "calculate" in r.getMessage()]
    assert lines and all(r.exc_info is None for r in lines)
    assert "Division by zero" in lines[0].getMessage()


async def test_a_model_failure_shows_an_error_id_and_keeps_the_users_message(
    settings: Settings,
) -> None:
    async with await App.start(settings, chat_model=BrokenModel(messages=script())) as app:
        parts = await collect(app, MessageEvent(origin(), "please remember this"))
        assert len(parts) == 1 and isinstance(parts[0], Error)
        assert ERROR_ID.search(parts[0].message)
        assert "10.0.0.7" not in parts[0].message
        identity = await app.services.storage.identify(origin())
        stored = await app.services.storage.history(identity.conversation_pk, 10)
    assert [(m.role, m.content) for m in stored] == [("user", "please remember this")]


async def test_a_storage_error_before_the_turn_still_gets_an_answer(
    app: App, model: ScriptedChatModel
) -> None:
    database = app.services.settings.data_dir / "atelier.db"
    with sqlite3.connect(database) as conn:  # the database breaks under the running bot
        conn.execute("DROP TABLE conversations")
    parts = await collect(app, MessageEvent(origin(user="newcomer"), "hello?"))
    assert len(parts) == 1 and isinstance(parts[0], Error)
    assert ERROR_ID.search(parts[0].message)
    assert "conversations" not in parts[0].message  # no SQL in replies
    assert model.seen == []


async def test_a_second_plugin_with_the_same_command_is_refused(app: App) -> None:
    manager = app.plugins
    manager.sources["echo"] = Source("echo", "tests.core.sample_plugin")
    await manager.load("echo")
    manager.sources["copycat"] = Source("copycat", "tests.core.copycat_plugin")
    with pytest.raises(PluginError, match=r"/echo is already declared by plugin 'echo'"):
        await manager.load("copycat")
    assert "copycat" not in manager.loaded
    assert await say(app, "/echo still mine") == "still mine [echo]"


async def test_a_button_marked_for_it_works_where_its_plugin_was_disabled(
    echo_app: App,
) -> None:
    await say(echo_app, "/plugins disable echo", admin=True)
    stop = await collect(echo_app, ButtonEvent(origin(), "echo:stop:job-1"))
    assert stop == [Text("stopped job-1")]  # no outbound hook: the plugin is off here
    again = await collect(echo_app, ButtonEvent(origin(), "echo:again:1"))
    assert again == [Error("This button no longer works here.")]


# ---- reload rollback ---------------------------------------------------------------

VERSION_1 = """
    import asyncio
    from core.plugin import CommandContext, Plugin, PluginContext, ToolContext

    plugin = Plugin("phoenix", "Reload test", version="1")
    beats = []

    @plugin.tool
    async def old_tool(ctx: ToolContext) -> str:
        '''The first version's tool.'''
        return "old"

    @plugin.command("phoenix", "Which version answers")
    async def phoenix(ctx: CommandContext) -> str:
        return "version 1"

    @plugin.task
    async def beat(ctx: PluginContext) -> None:
        while True:
            beats.append(1)
            await asyncio.sleep(0.01)
"""

VERSION_2 = """
    import asyncio
    from pathlib import Path
    from core.plugin import CommandContext, Plugin, PluginContext, ToolContext

    plugin = Plugin("phoenix", "Reload test", version="2")

    @plugin.tool
    async def new_tool(ctx: ToolContext) -> str:
        '''The second version's tool.'''
        return "new"

    @plugin.command("phoenix", "Which version answers")
    async def phoenix(ctx: CommandContext) -> str:
        return "version 2"

    @plugin.command("rise", "Only in version 2")
    async def rise(ctx: CommandContext) -> str:
        return "risen"

    @plugin.task
    async def beat(ctx: PluginContext) -> None:
        Path(MARKER).write_text("version 2 ran a task")

    @plugin.on_setup
    async def setup(ctx: PluginContext) -> None:
        raise RuntimeError("version 2 cannot start")
"""


@pytest.fixture
def phoenix_dir(tmp_path: Path) -> Iterator[Path]:
    """A plugin package on ``sys.path`` that the test rewrites between loads."""
    root = tmp_path / "plugins_src"
    (root / "phoenix").mkdir(parents=True)
    sys.path.insert(0, str(root))
    try:
        yield root / "phoenix"
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "phoenix" or m.startswith("phoenix.")]:
            del sys.modules[name]


async def test_a_failed_reload_keeps_serving_the_old_version(
    app: App, phoenix_dir: Path, tmp_path: Path
) -> None:
    manager = app.plugins
    (phoenix_dir / "__init__.py").write_text(textwrap.dedent(VERSION_1))
    importlib.invalidate_caches()
    manager.sources["phoenix"] = Source("phoenix", "phoenix")
    await manager.load("phoenix")
    old = manager.loaded["phoenix"]
    old_module = sys.modules["phoenix"]

    marker = tmp_path / "marker.txt"
    source = textwrap.dedent(VERSION_2).replace("MARKER", repr(str(marker)))
    (phoenix_dir / "__init__.py").write_text(source)
    importlib.invalidate_caches()
    with pytest.raises(PluginError, match="version 2 cannot start"):
        await manager.reload("phoenix")

    assert manager.loaded["phoenix"] is old
    assert sys.modules["phoenix"] is old_module
    assert [tool.name for tool in old.bound_tools] == ["old_tool"]
    assert await say(app, "/phoenix") == "version 1"
    assert (await say(app, "/rise")).startswith("error: Unknown command /rise.")
    beats = len(old_module.beats)
    await asyncio.sleep(0.1)
    assert len(old_module.beats) > beats  # the old task still runs
    assert not marker.exists()  # the new version's task never ran
