"""The agent and the knowledge base: where a server has documents the model may search
them, its answer cites passages by number and the reply lists the sources under it;
where a server has none the tool is never offered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from langchain_core.messages import ToolMessage

from bot.app import App
from core.events import MessageEvent, Text
from tests.core.conftest import collect, origin
from tests.fakes import ScriptedChatModel, script, tool_call
from tests.knowledge.conftest import doc, kb, knowledge_settings

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.model]

ANSWER = "Guests must be signed in by a member [1]."


@pytest.fixture(scope="module")
def model() -> ScriptedChatModel:
    """Searches once, then answers with a citation; afterwards answers "ok"."""
    return ScriptedChatModel(
        messages=script(
            tool_call("search_knowledge", query="guest policy"),
            ANSWER,
            *["ok"] * 20,
        )
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory, model: ScriptedChatModel
) -> AsyncIterator[App]:
    """A bot whose server ``kb`` has the FAQ in its knowledge base."""
    data: Path = tmp_path_factory.mktemp("cite") / "data"
    async with await App.start(knowledge_settings(data), chat_model=model) as started:
        assert "Added" in str(await kb(started, "add", doc("faq.md"), server="kb"))
        yield started


async def test_the_answer_cites_passages_and_the_reply_lists_their_sources(
    app: App, model: ScriptedChatModel
) -> None:
    parts = await collect(app, MessageEvent(origin(server="kb"), "Can I bring a guest?"))
    final = [p for p in parts if isinstance(p, Text)][-1].text
    answer, _, sources = final.partition("\n\nSources:\n")
    assert answer == ANSWER
    assert sources.startswith("[1] “faq.md"), final
    assert model.offered[0] == ["search_knowledge"]
    passages = next(m for m in model.seen[1] if isinstance(m, ToolMessage)).content
    assert isinstance(passages, str) and passages.count("[1] (from “faq.md") == 1
    assert "cite the numbers" in passages


async def test_a_server_without_documents_is_never_offered_the_tool(
    app: App, model: ScriptedChatModel
) -> None:
    before = len(model.offered)
    await collect(app, MessageEvent(origin(server="empty"), "Can I bring a guest?"))
    assert model.offered[before:] == [[]]


async def test_the_tool_comes_and_goes_with_the_documents_on_the_next_turn(
    app: App, model: ScriptedChatModel
) -> None:
    # "Has documents?" is asked on every turn, so it is cached: changes must clear it.
    await collect(app, MessageEvent(origin(server="late"), "Can I bring a guest?"))
    assert "Added" in str(await kb(app, "add", doc("faq.md"), server="late"))
    await collect(app, MessageEvent(origin(server="late"), "Can I bring a guest?"))
    assert "Removed" in str(await kb(app, "clear", server="late"))
    before = len(model.offered)
    await collect(app, MessageEvent(origin(server="late"), "Can I bring a guest?"))

    assert model.offered[before - 2 : before] == [[], ["search_knowledge"]]
    assert model.offered[before:] == [[]]
