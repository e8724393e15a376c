"""Tool-calling plumbing shared by both backends, driven through a scripted backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from agents.messages import to_openai_messages
from agents.toolcall import GrammarToolChatModel
from agents.toolschema import ANSWER, args_note, forced_choice, parse_choice, resolve_mode


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression.

    Args:
        expression: the expression, e.g. "2 + 2".
    """
    return expression


class ScriptedModel(GrammarToolChatModel):
    """A backend answering from a script: constrained steps and plain replies are recorded."""

    script: list[str] = Field(default_factory=list)
    sent: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    async def _send(self, params: dict[str, Any], fairness_key: str) -> dict[str, Any]:
        self.sent.append({**params, "fairness_key": fairness_key})
        content = self.script.pop(0)
        return {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}

    async def _send_stream(
        self, params: dict[str, Any], fairness_key: str
    ) -> AsyncIterator[dict[str, Any]]:
        self.sent.append({**params, "fairness_key": fairness_key})
        for word in self.script.pop(0).split(" "):
            yield {"choices": [{"delta": {"content": word + " "}, "finish_reason": None}]}


def test_gemma_style_conversion_keeps_every_turn_renderable() -> None:
    messages = [
        SystemMessage("be brief"),
        HumanMessage("what is 2+2?"),
        AIMessage(
            "", tool_calls=[{"name": "calculate", "args": {"expression": "2+2"}, "id": "c1"}]
        ),
        ToolMessage("4", tool_call_id="c1"),
        AIMessage(""),
    ]

    converted = to_openai_messages(messages, native=False, system_role=False)

    assert converted == [
        {"role": "user", "content": "be brief\n\nwhat is 2+2?"},
        {"role": "assistant", "content": 'Calling tool calculate with {"expression": "2+2"}.'},
        {"role": "user", "content": "Result of tool calculate: 4"},
    ]
    # ChatML and most templates have a system turn: the instructions stay in it.
    with_system = to_openai_messages(messages, native=False)
    assert with_system[0] == {"role": "system", "content": "be brief"}
    assert with_system[1] == {"role": "user", "content": "what is 2+2?"}


def test_native_conversion_keeps_structured_tool_turns() -> None:
    call: ToolCall = {
        "name": "calculate",
        "args": {"expression": "1"},
        "id": "c1",
        "type": "tool_call",
    }
    messages = [
        SystemMessage("s"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("1", tool_call_id="c1"),
    ]

    system, assistant, result = to_openai_messages(messages, native=True)

    assert system == {"role": "system", "content": "s"}
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"expression": "1"}
    assert result == {"role": "tool", "tool_call_id": "c1", "content": "1"}


def test_modes_and_choices() -> None:
    assert resolve_mode("auto", "gemma") == "grammar"
    assert resolve_mode("auto", "chatml-function-calling") == "native"
    assert forced_choice("none", ["calculate", ANSWER]) == ANSWER
    assert forced_choice({"type": "function", "function": {"name": "calculate"}}, ["calculate"])
    assert forced_choice("auto", ["calculate"]) is None
    assert parse_choice('"calculate"', ["calculate", ANSWER]) == "calculate"
    assert parse_choice("garbage", ["calculate", ANSWER]) == ANSWER
    with pytest.raises(ValueError, match="not one of the bound tools"):
        forced_choice("launch_rockets", ["calculate"])


async def test_the_model_picks_a_tool_then_fills_its_schema() -> None:
    model = ScriptedModel(script=['"calculate"', '{"expression": "12*7"}'], sent=[])

    reply = await model.bind_tools([calculate]).ainvoke("12 times 7?", fairness_key="s1")

    assert isinstance(reply, AIMessage)
    assert reply.tool_calls[0]["name"] == "calculate"
    assert reply.tool_calls[0]["args"] == {"expression": "12*7"}
    choice_step, args_step = model.sent
    assert choice_step["response_format"]["schema"]["enum"] == ["calculate", ANSWER]
    assert args_step["response_format"]["schema"]["required"] == ["expression"]
    assert {step["fairness_key"] for step in model.sent} == {"s1"}


async def test_choosing_answer_streams_a_plain_reply_without_tools() -> None:
    model = ScriptedModel(script=['"answer"', "hello there friend"], sent=[])

    chunks = [c async for c in model.bind_tools([calculate]).astream("hi")]

    assert "".join(str(c.content) for c in chunks) == "hello there friend "
    assert "tools" not in model.sent[-1] and "response_format" not in model.sent[-1]


async def test_arguments_that_are_not_json_become_an_invalid_tool_call() -> None:
    model = ScriptedModel(script=['{"expression": "1+'], sent=[])

    reply = await model.bind_tools([calculate], tool_choice="calculate").ainvoke("x")

    assert isinstance(reply, AIMessage)
    assert reply.tool_calls == []
    assert reply.invalid_tool_calls[0]["name"] == "calculate"


async def test_fairness_key_also_comes_from_run_metadata() -> None:
    model = ScriptedModel(script=["ok"], sent=[])

    await model.ainvoke("hi", config={"metadata": {"fairness_key": "server-9"}})

    assert model.sent[0]["fairness_key"] == "server-9"


async def test_an_unseeded_model_samples_with_a_fresh_seed_each_call() -> None:
    model = ScriptedModel(script=["a", "b", "c", "d"], seed=None)
    for _ in range(2):
        await model.ainvoke([HumanMessage("hi")])
    seeded = ScriptedModel(script=["a", "b"], seed=7)
    for _ in range(2):
        await seeded.ainvoke([HumanMessage("hi")])
    first, second = (sent["seed"] for sent in model.sent)
    assert isinstance(first, int) and first != second  # llama.cpp's default would repeat
    assert [sent["seed"] for sent in seeded.sent] == [7, 7]


def test_the_arguments_note_quotes_the_request_and_no_example_text() -> None:
    tool = convert_to_openai_tool(calculate)
    note = args_note(tool, "What is 12 times 7?")
    assert note.endswith("for this request: What is 12 times 7?")
    assert "2 + 2" not in note and "description" not in note  # tiny models copy examples


class OnePassModel(ScriptedModel):
    """A scripted backend that takes lazy grammars, so tools cost one pass."""

    @property
    def lazy_grammars(self) -> bool:
        return True


async def test_one_pass_streams_an_answer_as_soon_as_it_is_clearly_words() -> None:
    model = OnePassModel(script=["The sky is blue."], sent=[])

    parts = [p async for p in model.bind_tools([calculate]).astream("Why blue?")]

    assert "".join(str(p.content) for p in parts) == "The sky is blue. "
    assert str(parts[0].content) == "The "  # the first word is shown at once
    assert not any(getattr(p, "tool_calls", None) for p in parts)
    (request,) = model.sent  # one model call, no "which tool?" step
    assert request["lazy_grammar"]["starts"] == "{"
    assert "calculate" in request["messages"][0]["content"]
    schema = request["lazy_grammar"]["schema"]["anyOf"][0]
    assert schema["properties"]["tool"] == {"const": "calculate"}


async def test_one_pass_gathers_a_reply_that_opens_with_a_brace_into_a_tool_call() -> None:
    model = OnePassModel(
        script=['  {"tool": "calculate", "arguments": {"expression": "12*7"}}'], sent=[]
    )

    parts = [p async for p in model.bind_tools([calculate]).astream("12 times 7?")]
    reply = (
        await OnePassModel(
            script=['{"tool": "calculate", "arguments": {"expression": "3+4"}}'], sent=[]
        )
        .bind_tools([calculate])
        .ainvoke("3 plus 4?")
    )

    assert "".join(str(p.content) for p in parts).strip() == ""
    (call,) = parts[-1].tool_calls  # type: ignore[attr-defined]
    assert (call["name"], call["args"]) == ("calculate", {"expression": "12*7"})
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls[0]["args"] == {"expression": "3+4"}


async def test_one_pass_reports_a_broken_call_back_to_the_agent() -> None:
    model = OnePassModel(script=['{"tool": "calculate", "arguments": {"expr'], sent=[])

    reply = await model.bind_tools([calculate]).ainvoke("12 times 7?")

    assert isinstance(reply, AIMessage)
    assert not reply.tool_calls
    assert "not valid JSON" in str(reply.invalid_tool_calls[0]["error"])


async def test_a_forced_tool_still_takes_the_arguments_step() -> None:
    model = OnePassModel(script=['{"expression": "2+2"}'], sent=[])

    reply = await model.bind_tools([calculate], tool_choice="calculate").ainvoke("2+2")

    assert isinstance(reply, AIMessage)
    assert reply.tool_calls[0]["args"] == {"expression": "2+2"}
    assert "lazy_grammar" not in model.sent[0]
