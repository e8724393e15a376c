"""Answer or call a tool in one model pass: a lazy grammar over free text.

The model is shown the tools in its system prompt and told to reply with one JSON object
``{"tool": NAME, "arguments": {...}}`` to use one. Its output is free text unless it
starts (after white space) with ``{``: from there a grammar admits only a call of an
offered tool with arguments that match that tool's schema. So a tool call is always
well-formed, an answer streams as it is generated, and a turn with tools costs one
model call instead of a "which tool?" call before it.

``Decision`` watches the stream: text is held only while it is white space, then either
released as an answer or gathered as a call. Pure functions and data: no model calls.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.toolschema import args_schema

STARTS = "{"
"""A reply whose first visible character is ``{`` is a tool call: grammar from there."""


def note(tools: Sequence[dict[str, Any]]) -> str:
    """The system-prompt lines that offer ``tools``: names, argument names, descriptions.

    Short on purpose: every token here is evaluated before the first word of a cold turn
    (the grammar, not the prompt, holds the full argument schemas).
    """
    lines = ["You can use these tools:"]
    for tool in tools:
        function = tool["function"]
        args = ", ".join(args_schema(tool).get("properties") or {})
        desc = function.get("description") or ""
        lines.append(f"- {function['name']}({args}): {desc}".rstrip(": "))
    lines.append(
        'To use a tool, reply with only {"tool": "<name>", "arguments": {...}}. '
        "Otherwise answer the user directly."
    )
    return "\n".join(lines)


def calls_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """JSON schema of exactly one call of one of ``tools``."""
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "tool": {"const": tool["function"]["name"]},
                    "arguments": args_schema(tool),
                },
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
            for tool in tools
        ]
    }


CONTEXT = "Context (set by the bot, not by the user):"
"""How the agent's per-conversation line (platform, server, channel, user) begins."""


def with_note(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``messages`` with ``text`` added to the system message (or the first message).

    The note goes before the per-conversation ``CONTEXT`` line when there is one: all
    that comes before it (the server's prompt and the tools) is then the same for every
    conversation, so a new one reuses it from another conversation's cache.
    """
    if not messages:
        return [{"role": "system", "content": text}]
    first = messages[0]
    content = first.get("content")
    content = content if isinstance(content, str) else ""
    if first.get("role") == "system":
        head, mark, tail = content.partition(f"\n{CONTEXT}")
        if mark and head:
            merged = f"{head}\n\n{text}{mark}{tail}"
        else:
            merged = f"{content}\n\n{text}" if content else text
    else:
        merged = f"{text}\n\n{content}"
    return [{**first, "content": merged}, *messages[1:]]


@dataclass
class Decision:
    """Whether a streamed reply is an answer (``text``) or a tool call (``tool``)."""

    kind: str | None = None
    held: list[str] = field(default_factory=list)

    def feed(self, text: str) -> str:
        """Text to show the user now ('' while undecided or gathering a call)."""
        if self.kind == "text":
            return text
        self.held.append(text)
        if self.kind is None:
            start = "".join(self.held).lstrip()
            if not start:
                return ""
            self.kind = "tool" if start.startswith("{") else "text"
            if self.kind == "text":
                shown, self.held = "".join(self.held), []
                return shown
        return ""

    def call_text(self) -> str | None:
        """The tool call gathered (None for an answer)."""
        return "".join(self.held).strip() if self.kind == "tool" else None

    def leftover(self) -> str:
        """What was held and never shown (white space only, for an empty answer)."""
        return "" if self.kind == "tool" else "".join(self.held)


def parse_call(text: str) -> tuple[str, str]:
    """``(tool name, arguments JSON)`` of a gathered call; ValueError says what is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the tool call is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("tool"), str):
        raise ValueError('the tool call has no "tool" name')
    return document["tool"], json.dumps(document.get("arguments", {}))
