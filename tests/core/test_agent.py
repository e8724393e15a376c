"""Stories of the agent: tool calls, disabled tools, memory and truncation."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from bot.app import App
from bot.config import Settings
from core.events import MessageEvent, Progress, Text
from tests.core.conftest import collect, origin, say
from tests.fakes import ScriptedChatModel, script, tool_call


async def test_the_agent_calls_a_tool_and_answers_with_its_result(settings: Settings) -> None:
    model = ScriptedChatModel(
        messages=script(tool_call("calculate", expression="6 * 7"), "It is 42.")
    )
    async with await App.start(settings, chat_model=model) as app:
        parts = await collect(app, MessageEvent(origin(), "what is six times seven?"))
    assert Progress("using calculate") in parts
    assert parts[-1] == Text("It is 42.")
    second_call = model.seen[1]
    assert isinstance(second_call[-1], ToolMessage)
    assert second_call[-1].content == "6 * 7 = 42"
    assert "calculate" in model.offered[0]


async def test_a_failing_tool_becomes_a_message_to_the_model(settings: Settings) -> None:
    model = ScriptedChatModel(
        messages=script(tool_call("calculate", expression="1/0"), "Cannot divide by zero.")
    )
    async with await App.start(settings, chat_model=model) as app:
        reply = await say(app, "1/0?")
    assert reply == "Cannot divide by zero."
    assert model.seen[1][-1].content == "error: the tool calculate failed: Division by zero."


async def test_a_made_up_tool_name_is_answered_not_crashed(settings: Settings) -> None:
    model = ScriptedChatModel(messages=script(tool_call("rm_rf", path="/"), "Sorry."))
    async with await App.start(settings, chat_model=model) as app:
        assert await say(app, "delete everything") == "Sorry."
    assert str(model.seen[1][-1].content).startswith("error: there is no tool named 'rm_rf'")


async def test_the_llm_cannot_forge_the_caller(settings: Settings) -> None:
    """Context reaches tools from the core; the schema the LLM sees has no such field."""
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model) as app:
        specs = app.plugins.loaded["calculator"].tools
        assert list(specs[0].schema.model_json_schema()["properties"]) == ["expression"]
        assert "ctx" not in specs[0].schema.model_json_schema()["properties"]


async def test_tool_steps_stop_at_max_steps(settings: Settings) -> None:
    settings.agent.max_steps = 2
    model = ScriptedChatModel(
        messages=script(tool_call("calculate", expression="1+1"), "Two.", repeat=False)
    )
    async with await App.start(settings, chat_model=model) as app:
        assert await say(app, "1+1") == "Two."
    assert model.offered == [["calculate"], []]  # the last step: no tools


async def test_memory_comes_back_and_forget_clears_it(app: App, model: ScriptedChatModel) -> None:
    await say(app, "my name is Ada")
    await say(app, "what is my name?")
    last = model.seen[-1]
    assert [type(m) for m in last] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert last[1].content == "my name is Ada"
    assert await say(app, "/forget") == "Forgotten (4 messages removed)."
    await say(app, "and now?")
    assert [type(m) for m in model.seen[-1]] == [SystemMessage, HumanMessage]
    # memory is per conversation: another user in the same channel has none
    await say(app, "hello", user="u2")
    assert len(model.seen[-1]) == 2


async def test_memory_survives_a_restart(settings: Settings) -> None:
    first = ScriptedChatModel(messages=script("noted", repeat=True))
    async with await App.start(settings, chat_model=first) as app:
        await say(app, "remember 7")
    second = ScriptedChatModel(messages=script("7", repeat=True))
    async with await App.start(settings, chat_model=second) as app:
        await say(app, "what number?")
    assert [m.content for m in second.seen[0][1:]] == ["remember 7", "noted", "what number?"]


async def test_long_history_is_cut_oldest_first(settings: Settings) -> None:
    settings.llm.max_tokens = 50
    settings.agent.context_reserve_tokens = 0
    model = ScriptedChatModel(messages=script("ok", repeat=True), context_window=400)
    async with await App.start(settings, chat_model=model) as app:
        for i in range(30):
            await say(app, f"message number {i} " + "padding " * 10)
        last = model.seen[-1]
    assert last[-1].content.startswith("message number 29")
    kept = [m.content for m in last[1:-1] if isinstance(m, HumanMessage)]
    assert 0 < len(kept) < 29
    assert kept[-1].startswith("message number 28")  # the newest history is what stays
    total = sum(len(str(m.content)) // 4 + 1 for m in last)
    assert total <= 400 - 50


async def test_an_overlong_message_is_shortened_not_crashed(settings: Settings) -> None:
    settings.llm.max_tokens = 50
    settings.agent.context_reserve_tokens = 0
    settings.limits.max_message_chars = 100_000
    model = ScriptedChatModel(messages=script("ok", repeat=True), context_window=300)
    async with await App.start(settings, chat_model=model) as app:
        text = "START " + "word " * 5000 + " END?"
        assert await say(app, text) == "ok"
    sent = str(model.seen[-1][-1].content)
    assert sent.startswith("START") and sent.endswith("END?")
    assert "shortened to fit the context window" in sent
    assert len(sent) < len(text) // 10


async def test_a_repeated_tool_call_is_not_run_again(settings: Settings) -> None:
    call = tool_call("calculate", expression="6 * 7")
    model = ScriptedChatModel(messages=script(call, call, "It is 42."))
    async with await App.start(settings, chat_model=model) as app:
        parts = await collect(app, MessageEvent(origin(), "six times seven, twice"))
    assert parts.count(Progress("using calculate")) == 1
    assert parts[-1] == Text("It is 42.")
    assert model.offered[2] == []  # the step after the repeat answers without tools


async def test_a_reply_that_only_echoes_a_tool_call_gets_the_tool_result(
    settings: Settings,
) -> None:
    echo = 'Calling tool calculate with {"expression": "6 * 7"}.'
    model = ScriptedChatModel(messages=script(tool_call("calculate", expression="6 * 7"), echo))
    async with await App.start(settings, chat_model=model) as app:
        reply = await say(app, "six times seven?")
    assert reply == "I did not finish an answer; the tools returned:\n6 * 7 = 42"


async def test_an_empty_reply_gets_an_honest_line(settings: Settings) -> None:
    model = ScriptedChatModel(messages=script(" "))
    async with await App.start(settings, chat_model=model) as app:
        reply = await say(app, "hm?")
    assert reply == "Sorry, I could not come up with an answer to that."


async def test_tools_are_offered_only_where_their_hint_matches(settings: Settings) -> None:
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model) as app:
        await say(app, "What is the capital of France?")
        await say(app, "What is 12 times 7?")
        await say(app, "Draw me a picture of a cat")
        app.services.settings.agent.tool_hints = False
        await say(app, "What is the capital of France?")
    assert model.offered == [[], ["calculate"], ["generate_image"], ["calculate", "generate_image"]]
