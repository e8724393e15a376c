"""Tool-calling vocabulary shared by the backends and the one-pass flow: which mode,
which names, the notes and JSON schemas shown to the model, and OpenAI-format responses
turned into LangChain messages. Pure functions: no model calls, no I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call_chunk

ANSWER = "answer"
"""The pseudo tool name that means "reply in words" in the choice step."""

NATIVE_FORMATS = frozenset(
    {"chatml-function-calling", "functionary", "functionary-v1", "functionary-v2"}
)
CHOICE_MAX_TOKENS = 32
ARGS_MAX_TOKENS = 256
"""The arguments step's own budget: a short answer limit must not cut a call's JSON."""

Mode = Literal["native", "grammar"]


def resolve_mode(tool_calling: str, chat_format: str | None) -> Mode:
    """``auto`` means native for function-calling chat formats, grammar otherwise."""
    if tool_calling == "native":
        return "native"
    if tool_calling == "grammar":
        return "grammar"
    return "native" if chat_format in NATIVE_FORMATS else "grammar"


def tool_name(tool: dict[str, Any]) -> str:
    """The name of an OpenAI-format tool."""
    return str(tool["function"]["name"])


def forced_choice(tool_choice: Any, names: Sequence[str]) -> str | None:
    """The tool ``tool_choice`` forces, ``ANSWER`` for ``"none"``, or None (model picks).

    Accepts a tool name, ``{"type": "function", "function": {"name": ...}}``, ``"none"``,
    ``"auto"``/None, and ``"any"``/``"required"`` (a tool, but the model picks which:
    returned as None; see ``choice_names``).
    """
    if isinstance(tool_choice, dict):
        tool_choice = tool_choice.get("function", {}).get("name")
    if tool_choice in (None, "auto", "any", "required"):
        return None
    if tool_choice == "none":
        return ANSWER
    if tool_choice not in names:
        raise ValueError(f"tool_choice {tool_choice!r} is not one of the bound tools {names}")
    return str(tool_choice)


def choice_names(tools: Sequence[dict[str, Any]], tool_choice: Any) -> list[str]:
    """The names the choice step may produce: the tools, plus ``answer`` unless forbidden."""
    names = [tool_name(t) for t in tools]
    return names if tool_choice in ("any", "required") else [*names, ANSWER]


def choice_schema(names: Sequence[str]) -> dict[str, Any]:
    """JSON schema whose only valid documents are the quoted names."""
    return {"type": "string", "enum": list(names)}


def args_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments (an empty object when it has none)."""
    params = tool["function"].get("parameters") or {}
    return params if params.get("properties") else {"type": "object", "properties": {}}


def choice_note(tools: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """The instruction appended for the choice step: the tools and how to pick."""
    lines = ["You can use these tools:"]
    for tool in tools:
        desc = tool["function"].get("description") or ""
        lines.append(f"- {tool_name(tool)}: {desc}".rstrip(": "))
    if ANSWER in names:
        lines.append(f"- {ANSWER}: reply to the user directly, without a tool.")
    lines.append("Reply with exactly one name from this list.")
    return "\n".join(lines)


def args_note(tool: dict[str, Any], request: str = "") -> str:
    """The instruction appended for the arguments step.

    It quotes the user's request and shows the schema without descriptions or titles:
    small models copy any example text they are shown instead of the request's numbers
    (measured in bench/tool_selection.py: 0 of 10 right with descriptions, 6 of 10
    without, with the calculator's pattern).
    """
    schema = json.dumps(bare_schema(args_schema(tool)))
    asked = f" for this request: {request.strip()}" if request.strip() else ""
    return f"Write the arguments of the tool {tool_name(tool)} as one JSON object {schema}{asked}"


def bare_schema(schema: Any) -> Any:
    """``schema`` without its human text (``description``, ``title``, ``examples``)."""
    if isinstance(schema, dict):
        return {
            key: bare_schema(value)
            for key, value in schema.items()
            if key not in ("description", "title", "examples")
        }
    if isinstance(schema, list):
        return [bare_schema(item) for item in schema]
    return schema


def parse_choice(text: str, names: Sequence[str]) -> str:
    """The name the choice step produced; ``answer`` (or the first name) if unreadable."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text.strip().strip('"')
    if value in names:
        return str(value)
    return ANSWER if ANSWER in names else names[0]


def new_call_id() -> str:
    """A unique tool call id."""
    return f"call_{uuid.uuid4().hex[:24]}"


def tool_call_message(content: str, calls: Sequence[tuple[str, str, str | None]]) -> AIMessageChunk:
    """A final message chunk with ``calls`` as ``(name, args_json, id)`` triples.

    Arguments that are not a JSON object become ``invalid_tool_calls`` (the agent reports
    those back to the model) instead of silently turning into ``{}``.
    """
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for name, args_json, call_id in calls:
        cid = call_id or new_call_id()
        try:
            args = json.loads(args_json or "{}")
        except json.JSONDecodeError as exc:
            invalid.append(invalid_tool_call(name=name, args=args_json, id=cid, error=str(exc)))
            continue
        if isinstance(args, dict):
            valid.append(ToolCall(name=name, args=args, id=cid, type="tool_call"))
        else:
            error = "arguments are not a JSON object"
            invalid.append(invalid_tool_call(name=name, args=args_json, id=cid, error=error))
    return AIMessageChunk(
        content=content, tool_calls=valid, invalid_tool_calls=invalid, chunk_position="last"
    )


def chunk_to_message(chunk: dict[str, Any]) -> AIMessageChunk | None:
    """An OpenAI chat-completion stream chunk as a LangChain chunk (None if empty)."""
    choices = chunk.get("choices") or []
    if not choices:
        return None
    delta = choices[0].get("delta") or {}
    content = delta.get("content") or ""
    calls: list[ToolCallChunk] = [
        tool_call_chunk(
            name=(call.get("function") or {}).get("name"),
            args=(call.get("function") or {}).get("arguments"),
            id=call.get("id"),
            index=call.get("index", i),
        )
        for i, call in enumerate(delta.get("tool_calls") or [])
    ]
    finish = choices[0].get("finish_reason")
    if not content and not calls and not finish:
        return None
    meta = {"finish_reason": finish} if finish else {}
    return AIMessageChunk(content=content, tool_call_chunks=calls, response_metadata=meta)


def response_to_message(response: dict[str, Any]) -> AIMessage:
    """A non-streamed OpenAI chat-completion response as an ``AIMessage``."""
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [
        (
            str((call.get("function") or {}).get("name")),
            str((call.get("function") or {}).get("arguments") or "{}"),
            call.get("id"),
        )
        for call in message.get("tool_calls") or []
    ]
    chunk = tool_call_message(message.get("content") or "", calls)
    return AIMessage(
        content=chunk.content,
        tool_calls=chunk.tool_calls,
        invalid_tool_calls=chunk.invalid_tool_calls,
        response_metadata={"finish_reason": choice.get("finish_reason")},
    )
