"""LangChain messages → OpenAI chat messages that a llama.cpp chat template can render.

Shared by both LLM backends. Pure conversion: no I/O, no model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, SystemMessage, ToolMessage

SYSTEMLESS_FORMATS = frozenset({"gemma", "mistral-instruct"})
"""llama.cpp chat formats whose template has no system turn (it would be dropped)."""


def to_openai_messages(
    messages: Sequence[BaseMessage], *, native: bool, system_role: bool = True
) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI chat messages the chat template can render.

    ``native`` keeps system/tool roles and structured tool calls. Otherwise every turn is
    user or assistant text (templates such as ``gemma`` silently drop ``tool`` turns): a
    tool call becomes an assistant sentence, a tool result a user turn, and empty turns
    are dropped (an empty turn would corrupt the gemma prompt). System text stays a
    system turn unless ``system_role`` is False (see ``SYSTEMLESS_FORMATS``): then it is
    folded into the first user turn. Small instruct models (SmolLM2) answer far worse
    with their instructions inside the user's turn.
    """
    out: list[dict[str, Any]] = []
    system: list[str] = []
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, AIMessage):
            names.update({str(c["id"]): c["name"] for c in message.tool_calls})
        if isinstance(message, SystemMessage) and not native:
            if system_role:
                out.append({"role": "system", "content": message.text})
            else:
                system.append(message.text)
            continue
        converted = _native_message(message) if native else _plain_message(message, names)
        if converted is not None:
            out.append(converted)
    return out if native else _fold_system(out, system)


def _native_message(message: BaseMessage) -> dict[str, Any] | None:
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
            }
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": message.text or None, "tool_calls": calls}
    return {"role": _role(message), "content": message.text}


def _plain_message(message: BaseMessage, names: dict[str, str]) -> dict[str, Any] | None:
    if isinstance(message, ToolMessage):
        name = message.name or names.get(message.tool_call_id, "tool")
        text = f"Result of tool {name}: {message.text}"
        return {"role": "user", "content": text}
    text = message.text
    if isinstance(message, AIMessage) and message.tool_calls:
        said = [
            f"Calling tool {c['name']} with {json.dumps(c['args'])}." for c in message.tool_calls
        ]
        text = "\n".join([text, *said]).strip()
    role = _role(message)
    if not text.strip():
        return None
    return {"role": "user" if role == "system" else role, "content": text}


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return message.role
    return {"human": "user", "ai": "assistant", "system": "system"}.get(message.type, "user")


def _fold_system(out: list[dict[str, Any]], system: list[str]) -> list[dict[str, Any]]:
    note = "\n\n".join(s for s in system if s.strip())
    if not note:
        return out
    for i, message in enumerate(out):
        if message["role"] == "user":
            out[i] = {**message, "content": f"{note}\n\n{message['content']}"}
            return out
    return [{"role": "user", "content": note}, *out]
