"""The console story with the bundled model: an admin enables the stdio MCP server, the
agent (forced to choose its ``add`` tool) calls it with arguments it wrote under the
tool's own JSON schema, the real MCP server adds, and the answer uses the result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from agents.chat_llamacpp import ChatLlamaCpp
from agents.engine import LlamaEngine
from agents.factory import resolve_model_path
from bot.app import App
from tests.core.conftest import isolated_settings, say
from tests.mcp_plugin.conftest import stdio_server

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]
FORCED = "calc_add"


class ForcedChoice(ChatLlamaCpp):
    """The real model, made to choose ``FORCED`` whenever it is offered (``tool_choice``)."""

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, BaseMessage]:
        names = {getattr(tool, "name", "") for tool in tools}
        if tool_choice is None and FORCED in names:
            tool_choice = FORCED
        return super().bind_tools(tools, tool_choice=tool_choice, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    """A bot on the bundled SmolLM2 (greedy) with the stdio test server configured."""
    settings = isolated_settings(
        tmp_path_factory.mktemp("mcp-real") / "data",
        enabled={"calculator": False},  # so only the MCP server can add
        config={"mcp": {"servers": {"calc": stdio_server()}}},
    )
    llm = settings.llm.model_copy(update={"temperature": 0.0, "n_ctx": 2048, "parallel": 1})
    engine = LlamaEngine.load(
        resolve_model_path(llm),
        n_ctx=llm.n_ctx,
        n_gpu_layers=None,
        n_threads=2,
        n_batch=256,
        chat_format=llm.chat_format,
        seed=0,
        parallel=1,
    )
    model = ForcedChoice(engine=engine, one_pass=False, **ChatLlamaCpp.sampling_from(llm))
    async with await App.start(settings, chat_model=model) as started:  # closes the engine
        yield started


async def test_the_agent_calls_the_enabled_mcp_tool_and_answers_with_its_result(
    app: App,
) -> None:
    plain = await say(app, "What is 1234 plus 4321?", server="other")
    assert "5555" not in plain, plain  # elsewhere there is no tool, and the model cannot add
    said = await say(app, "/mcp enable calc", server="console", admin=True)
    assert said.startswith("MCP server calc is now on in this server; tools:"), said
    answer = await say(app, "What is 1234 plus 4321?", server="console")
    assert "5555" in answer, answer
