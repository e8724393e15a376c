"""``ChatLlamaCpp`` with the real bundled model: streaming, budgeting hooks, grammar tools."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool

from agents.chat_llamacpp import ANY_OBJECT, ChatLlamaCpp, _grammar, _to_request
from agents.engine import LlamaEngine
from tests.agents.conftest import N_CTX

pytestmark = pytest.mark.model


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result.

    Args:
        expression: the arithmetic expression, e.g. "12 * 7".
    """
    return expression


@pytest.fixture
def model(engine: LlamaEngine) -> ChatLlamaCpp:
    return ChatLlamaCpp(engine=engine, max_tokens=16, temperature=0.0, seed=0)


def assert_well_formed_calculate_call(reply: AIMessage) -> None:
    assert reply.invalid_tool_calls == []
    (call,) = reply.tool_calls
    assert call["name"] == "calculate"
    assert set(call["args"]) == {"expression"}
    assert isinstance(call["args"]["expression"], str)
    assert call["id"]


def test_the_agent_can_budget_with_the_models_own_tokenizer(model: ChatLlamaCpp) -> None:
    assert model.context_window == N_CTX
    assert model.count_tokens("one two three") == model.get_num_tokens("one two three") > 0


async def test_a_reply_streams_in_several_chunks_equal_to_the_whole_reply(
    model: ChatLlamaCpp,
) -> None:
    question = [HumanMessage("Name three colours.")]

    chunks = [chunk async for chunk in model.astream(question, fairness_key="s1")]
    whole = await model.ainvoke(question)

    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == whole.content


async def test_asking_for_a_computation_gives_a_valid_call_or_an_answer(
    model: ChatLlamaCpp,
) -> None:
    bound = model.bind_tools([calculate])

    reply = await bound.ainvoke("Use the calculator: what is 12 * 7?")

    assert isinstance(reply, AIMessage)
    if reply.tool_calls or reply.invalid_tool_calls:
        assert_well_formed_calculate_call(reply)
    else:
        assert isinstance(reply.content, str)


async def test_a_forced_tool_yields_arguments_matching_its_schema(model: ChatLlamaCpp) -> None:
    bound = model.bind_tools([calculate], tool_choice="calculate")

    reply = await bound.ainvoke("What is 12 * 7?")
    streamed = [chunk async for chunk in bound.astream("What is 3 + 4?")]

    assert isinstance(reply, AIMessage)
    assert_well_formed_calculate_call(reply)
    merged = streamed[0]
    for chunk in streamed[1:]:
        merged = merged + chunk
    assert isinstance(merged, AIMessageChunk)
    assert_well_formed_calculate_call(AIMessage(**merged.model_dump(exclude={"type"})))


async def test_a_tool_result_in_history_is_rendered_and_answered(model: ChatLlamaCpp) -> None:
    call = {"name": "calculate", "args": {"expression": "12*7"}, "id": "call_1"}
    history = [
        HumanMessage("What is 12 * 7?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("84", tool_call_id="call_1"),
    ]

    reply = await model.bind_tools([calculate], tool_choice="none").ainvoke(history)

    assert isinstance(reply.content, str)
    assert reply.tool_calls == []


async def test_concurrent_conversations_all_complete(model: ChatLlamaCpp) -> None:
    replies = await asyncio.gather(
        *(model.ainvoke(f"Say hello to {name}.", fairness_key=name) for name in "abc")
    )

    assert all(isinstance(reply.content, str) for reply in replies)


def test_a_synchronous_invoke_runs_the_async_path(model: ChatLlamaCpp) -> None:
    reply = model.invoke("Say hi.", max_tokens=4)

    assert isinstance(reply.content, str)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}},
        {"type": "object", "properties": {"x": {"type": "strange"}}},
        {"type": "object", "properties": {"x": True}},
    ],
)
def test_a_schema_without_a_grammar_constrains_to_any_object(schema: dict[str, object]) -> None:
    """A tool's schema from elsewhere (an MCP server) never fails the turn."""
    params = {
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 8,
        "temperature": 0.0,
        "top_p": 1.0,
        "response_format": {"type": "json_object", "schema": schema},
    }
    request = _to_request(params, "k")
    assert request.grammar is not None
    assert request.grammar._grammar == _grammar(ANY_OBJECT)._grammar
