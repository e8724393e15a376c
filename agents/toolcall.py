"""Tool calling shared by both LLM backends: the chat model that answers or calls tools.

Two modes exist. **native** hands ``tools``/``tool_choice`` to the chat template (only
function-calling formats such as ``chatml-function-calling`` or ``functionary`` render
them). **grammar** works with any model, even a tiny base one:

- where the backend takes lazy grammars (the in-process engine) and the model may pick,
  one pass: free text is the answer, a reply that opens with ``{`` is forced to be a call
  of an offered tool (``agents.onepass``);
- otherwise two constrained steps: the output is forced to be exactly one tool name or
  ``"answer"``; then a tool's arguments are forced to match its JSON schema, or the
  reply is generated (and streamed) normally.

``GrammarToolChatModel`` holds these flows once; a backend only says how to send one
OpenAI-style request (``_send_stream``/``_send``). This module never loads a model and
never does I/O itself; names, notes and schemas live in ``agents.toolschema``.
"""

from __future__ import annotations

import asyncio
import random
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
)
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agents import onepass
from agents.config import LLMSettings
from agents.messages import SYSTEMLESS_FORMATS, to_openai_messages
from agents.toolschema import (
    ANSWER,
    ARGS_MAX_TOKENS,
    CHOICE_MAX_TOKENS,
    Mode,
    args_note,
    args_schema,
    choice_names,
    choice_note,
    choice_schema,
    chunk_to_message,
    forced_choice,
    new_call_id,
    parse_choice,
    resolve_mode,
    response_to_message,
    tool_call_message,
    tool_name,
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
    one_pass: bool = True
    """Grammar mode, model picks: answer or call in one pass where the backend can."""

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

    @property
    def lazy_grammars(self) -> bool:
        """Whether this backend takes ``lazy_grammar`` (grammar after a trigger) requests."""
        return False

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
        if self._one_pass_applies(call):
            whole: Any = None
            async for part in self._one_pass(call, None):
                whole = part.message if whole is None else whole + part.message
            message = AIMessage(
                content=whole.content if whole else "",
                tool_calls=whole.tool_calls if whole else [],
                invalid_tool_calls=whole.invalid_tool_calls if whole else [],
            )
            return ChatResult(generations=[ChatGeneration(message=message)])
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
        if self._one_pass_applies(call):
            async for part in self._one_pass(call, run_manager):
                yield part
            return
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

    def _one_pass_applies(self, call: _Call) -> bool:
        if not (self.one_pass and self.lazy_grammars and self.mode == "grammar" and call.tools):
            return False
        names = choice_names(call.tools, call.tool_choice)
        return ANSWER in names and forced_choice(call.tool_choice, names) is None

    async def _one_pass(
        self, call: _Call, run_manager: AsyncCallbackManagerForLLMRun | None
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Answer or call in one model pass (``agents.onepass``)."""
        params = {
            **call.params,
            "messages": onepass.with_note(call.params["messages"], onepass.note(call.tools)),
            "stream": True,
            "lazy_grammar": {
                "schema": onepass.calls_schema(call.tools),
                "starts": onepass.STARTS,
            },
        }
        decision = onepass.Decision()
        async for raw in self._send_stream(params, call.fairness_key):
            message = chunk_to_message(raw)
            if message is None:
                continue
            shown = decision.feed(message.text)
            if not shown and not message.response_metadata:
                continue
            generation = ChatGenerationChunk(
                message=AIMessageChunk(content=shown, response_metadata=message.response_metadata)
            )
            if run_manager is not None and shown:
                await run_manager.on_llm_new_token(shown, chunk=generation)
            yield generation
        text = decision.call_text()
        if text is None:
            if leftover := decision.leftover():
                yield ChatGenerationChunk(message=AIMessageChunk(content=leftover))
            return
        yield ChatGenerationChunk(message=_parsed_call(text))

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


def _parsed_call(text: str) -> AIMessageChunk:
    """A one-pass call as a final chunk; unreadable ones as invalid calls for the agent."""
    try:
        name, args = onepass.parse_call(text)
    except ValueError as exc:
        call = invalid_tool_call(name="unknown", args=text, id=new_call_id(), error=str(exc))
        return AIMessageChunk(content="", invalid_tool_calls=[call], chunk_position="last")
    return tool_call_message("", [(name, args, None)])


def _native_tool_choice(tool_choice: Any) -> Any:
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "any", "required"):
        return {"type": "function", "function": {"name": tool_choice}}
    return "required" if tool_choice == "any" else tool_choice
