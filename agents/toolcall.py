"""Tool calling shared by both LLM backends: message conversion, schemas, two-step choice.

Two modes exist. **native** hands ``tools``/``tool_choice`` to the chat template (only
function-calling formats such as ``chatml-function-calling`` or ``functionary`` render
them). **grammar** works with any model, even a tiny base one, in two constrained steps:

1. the output is forced (JSON-schema grammar) to be exactly one tool name or ``"answer"``;
2. for a tool, its arguments are forced to match the tool's JSON schema; for
   ``"answer"``, the reply is generated (and streamed) normally.

``GrammarToolChatModel`` holds that flow once; a backend only says how to send one
OpenAI-style request (``_send_stream``/``_send``). This module never loads a model and
never does I/O itself.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agents.config import LLMSettings
from agents.messages import SYSTEMLESS_FORMATS, to_openai_messages

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


@dataclass
class _Call:
    """One model call, resolved: request parameters, tools, fairness key."""

    params: dict[str, Any]
    fairness_key: str
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    request: str = ""  # the user's last message (the arguments step quotes it)


class GrammarToolChatModel(BaseChatModel):
    """A chat model whose tool calls are native or grammar-constrained (see module doc).

    Subclasses send one OpenAI-style request; everything else lives here. The fairness
    key of a call is, first found: the ``fairness_key`` call kwarg
    (``model.astream(msgs, fairness_key="s1")`` or ``model.bind(fairness_key="s1")``),
    ``config={"metadata": {"fairness_key": "s1"}}``, then the ``fairness_key`` field.
    """

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    tool_calling: Literal["auto", "native", "grammar"] = "auto"
    chat_format: str | None = "gemma"
    fairness_key: str = "default"

    @staticmethod
    def sampling_from(llm: LLMSettings) -> dict[str, Any]:
        """The ``[llm]`` settings every backend's chat model shares, as constructor kwargs."""
        return {
            "chat_format": llm.chat_format,
            "tool_calling": llm.tool_calling,
            "max_tokens": llm.max_tokens,
            "temperature": llm.temperature,
            "top_p": llm.top_p,
            "seed": llm.seed if llm.seed >= 0 else None,
        }

    @abstractmethod
    def _send_stream(
        self, params: dict[str, Any], fairness_key: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream one chat completion as OpenAI-format chunks."""

    @abstractmethod
    async def _send(self, params: dict[str, Any], fairness_key: str) -> dict[str, Any]:
        """Run one chat completion to the end; an OpenAI-format response."""

    def wire_messages(self, messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        """``messages`` as this model's chat template receives them (OpenAI format)."""
        return to_openai_messages(
            messages,
            native=self.mode == "native",
            system_role=self.chat_format not in SYSTEMLESS_FORMATS,
        )

    @property
    def mode(self) -> Mode:
        """The tool-calling mode in effect: ``native`` or ``grammar``."""
        return resolve_mode(self.tool_calling, self.chat_format)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; ``tool_choice`` is a tool name, ``"any"``, ``"none"`` or ``"auto"``."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._agenerate(messages, stop, None, **kwargs))
        raise RuntimeError(f"{type(self).__name__}: use ainvoke/astream inside an event loop")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._resolve(messages, stop, run_manager, kwargs)
        chunk = await self._grammar_tool_call(call)
        if chunk is not None:
            message = AIMessage(
                content="", tool_calls=chunk.tool_calls, invalid_tool_calls=chunk.invalid_tool_calls
            )
        else:
            message = response_to_message(await self._send(call.params, call.fairness_key))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._resolve(messages, stop, run_manager, kwargs)
        chunk = await self._grammar_tool_call(call)
        if chunk is not None:
            yield ChatGenerationChunk(message=chunk)
            return
        params = {**call.params, "stream": True}
        async for raw in self._send_stream(params, call.fairness_key):
            message = chunk_to_message(raw)
            if message is None:
                continue
            generation = ChatGenerationChunk(message=message)
            if run_manager is not None:
                await run_manager.on_llm_new_token(message.text, chunk=generation)
            yield generation

    def _resolve(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> _Call:
        metadata = run_manager.metadata if run_manager is not None else {}
        key = kwargs.get("fairness_key") or metadata.get("fairness_key") or self.fairness_key
        native = self.mode == "native"
        params: dict[str, Any] = {
            "messages": self.wire_messages(messages),
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "temperature": kwargs.get("temperature", self.temperature),
            "top_p": self.top_p,
            # No seed means a fresh one per call: llama.cpp would otherwise reuse its own
            # fixed default seed, so "random" answers would repeat from run to run.
            "seed": self.seed if self.seed is not None else random.randrange(2**31),
            "stop": stop,
        }
        tools = list(kwargs.get("tools") or [])
        tool_choice = kwargs.get("tool_choice")
        if native and tools:
            params["tools"] = tools
            params["tool_choice"] = _native_tool_choice(tool_choice)
        request = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        return _Call(params, str(key), tools, tool_choice, request)

    async def _grammar_tool_call(self, call: _Call) -> AIMessageChunk | None:
        """Steps 1 and 2 of grammar mode: None means "answer in words"."""
        if self.mode != "grammar" or not call.tools:
            return None
        names = choice_names(call.tools, call.tool_choice)
        choice = forced_choice(call.tool_choice, names)
        if choice is None:
            note = choice_note(call.tools, names)
            text = await self._constrained(call, note, choice_schema(names), CHOICE_MAX_TOKENS)
            choice = parse_choice(text, names)
        if choice == ANSWER:
            return None
        tool = next(t for t in call.tools if tool_name(t) == choice)
        note = args_note(tool, call.request)
        args = await self._constrained(call, note, args_schema(tool), ARGS_MAX_TOKENS)
        return tool_call_message("", [(choice, args, None)])

    async def complete_json(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        *,
        max_tokens: int = 64,
        fairness_key: str = "json",
    ) -> str:
        """One answer to OpenAI-style ``messages``, forced by a grammar to match the JSON
        ``schema``, at temperature 0 (a moderation judge's verdict); its text."""
        params = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "top_p": self.top_p,
            "seed": 0,
            "stop": None,
            "response_format": {"type": "json_object", "schema": schema},
        }
        response = await self._send(params, fairness_key)
        return str(response["choices"][0]["message"].get("content") or "")

    async def _constrained(
        self, call: _Call, note: str, schema: dict[str, Any], max_tokens: int
    ) -> str:
        messages = [*call.params["messages"], {"role": "user", "content": note}]
        params = {
            **call.params,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "response_format": {"type": "json_object", "schema": schema},
        }
        response = await self._send(params, call.fairness_key)
        return str(response["choices"][0]["message"].get("content") or "")


def _native_tool_choice(tool_choice: Any) -> Any:
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "any", "required"):
        return {"type": "function", "function": {"name": tool_choice}}
    return "required" if tool_choice == "any" else tool_choice
