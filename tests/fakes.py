"""Test doubles shared by the suite: a scripted chat model built on langchain-core's fake.

``ScriptedChatModel`` answers with the given ``AIMessage``s in turn (text is streamed
word by word; tool calls arrive as tool-call chunks) and records, per call, the messages
it saw and the names of the tools bound to it — so tests can assert what the LLM was
offered, never what a real model would say.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


def script(*replies: str | AIMessage, repeat: bool = False) -> Iterator[AIMessage]:
    """An iterator of replies for ``ScriptedChatModel(messages=...)``."""
    items = [AIMessage(r) if isinstance(r, str) else r for r in replies]
    return itertools.cycle(items) if repeat else iter(items)


def tool_call(name: str, call_id: str = "call-1", **args: Any) -> AIMessage:
    """A reply that asks for one tool call."""
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


class ScriptedChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts ``bind_tools`` and streams tool calls."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)
    offered: list[list[str]] = Field(default_factory=list)
    context_window: int = 4096

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        """Bind tools the way real chat models do (as a call kwarg)."""
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self.bind(tool_names=names, **kwargs)

    def _record(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        self.seen.append(list(messages))
        self.offered.append(list(kwargs.get("tool_names", [])))
        return next(self.messages)  # type: ignore[no-any-return]

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        message = self._record(messages, kwargs)
        text = message.content if isinstance(message.content, str) else ""
        for word in text.split(" ") if text else []:
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        for index, call in enumerate(message.tool_calls):
            chunk = AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": call["name"],
                        "args": json.dumps(call["args"]),
                        "id": call["id"],
                        "index": index,
                    }
                ],
            )
            yield ChatGenerationChunk(message=chunk)


class PacedChatModel(ScriptedChatModel):
    """``ScriptedChatModel`` that waits ``pause`` seconds before each streamed chunk after
    the first, as a real model's words trickle in (0: all at once)."""

    pause: float = 0.0

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        first = True
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            if not first and self.pause:
                await asyncio.sleep(self.pause)
            first = False
            yield chunk
