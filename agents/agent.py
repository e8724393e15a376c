"""The agent: one chat turn = history within budget + the server's tools + the LLM loop.

Built on langchain-core (any ``BaseChatModel`` with ``bind_tools``): stream the model's
answer, run the tool calls it makes (context injected by the core, never by the LLM),
feed the results back, repeat up to ``agent.max_steps``. The conversation's memory comes
from storage and is cut to the model's context window, oldest first; an over-long message
is shortened, never a crash. This module must not know about platforms or plugins.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from agents import onepass
from core.errors import UserError, new_error_id
from core.events import Origin, Progress, ReplyPart, Text, TextDelta
from core.plugin import ToolResult

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agents.config import AgentSettings, LLMSettings
    from storage.repository import Identity, Storage, StoredMessage

log = logging.getLogger(__name__)
TRUNCATION_MARK = "\n[…message shortened to fit the context window…]\n"
# How agents/messages.py shows a tool call to models without native tool calls; a small
# model may repeat it as its whole "answer".
_TOOL_ECHO = re.compile(r"(?i)^calling tool [\w.-]+ with .*$")


@dataclass(slots=True)
class Turn:
    """One user message to answer, with what the core decided around it."""

    origin: Origin
    identity: Identity
    text: str
    tools: Sequence[BaseTool]
    system_prompt: str | None = None
    tool_config: RunnableConfig | None = None  # passed to every tool call (context)


class Agent:
    """Answers turns with a chat model, the turn's tools and stored memory."""

    def __init__(
        self, model: BaseChatModel, llm: LLMSettings, settings: AgentSettings, storage: Storage
    ) -> None:
        self.model = model
        self.llm = llm
        self.settings = settings
        self.storage = storage
        counter = getattr(model, "count_tokens", None)
        self.count_tokens: Callable[[str], int] = counter if callable(counter) else _estimate
        window = getattr(model, "context_window", None)
        self.context_window: int = window if isinstance(window, int) else llm.n_ctx

    async def run(self, turn: Turn) -> AsyncIterator[ReplyPart]:
        """Answer ``turn``: stream text deltas, then the final ``Text``; persist both."""
        agent = self.settings
        conversation = turn.identity.conversation_pk
        history = await self.storage.history(conversation, agent.history_messages)
        messages, user_text = self.context(turn, history)
        # Stored before the model runs: a crash, a model error or a closed stream keeps it.
        await self.storage.append_messages(
            conversation, [("user", user_text, self.count_tokens(user_text))]
        )
        bound = self.model.bind_tools(list(turn.tools)) if turn.tools else self.model
        by_name = {tool.name: tool for tool in turn.tools}
        pieces: list[str] = []
        results: list[str] = []  # what the tools said, for an answer the model never gave
        footers: list[str] = []  # shown under the answer (sources), never to the model
        done: set[str] = set()  # calls already run this turn
        answer_now = False
        key = str(turn.identity.server_pk)
        for step in range(agent.max_steps):
            last = step == agent.max_steps - 1
            model = self.model if last or answer_now else bound
            calls: list[AIMessageChunk] = []  # only chunks with tool-call data are merged
            step_text: list[str] = []
            async for chunk in model.astream(messages, fairness_key=key):
                text = _text_of(chunk)
                if text:
                    step_text.append(text)
                    yield TextDelta(text)
                if isinstance(chunk, AIMessageChunk) and chunk.tool_call_chunks:
                    calls.append(chunk)
            pieces.extend(step_text)
            reply = _merge(calls)
            if reply is None or not reply.tool_calls:
                break
            fresh = [call for call in reply.tool_calls if _call_key(call) not in done]
            if not fresh:
                # Small models repeat the same call instead of answering: the next step
                # gets no tools and answers from the results it already has.
                answer_now = True
                continue
            done.update(_call_key(call) for call in fresh)
            messages.append(AIMessage(content="".join(step_text), tool_calls=fresh))
            for call in fresh:
                yield Progress(f"using {call['name']}")
                result = await self._call_tool(by_name, call["name"], call["args"], turn)
                if isinstance(result, ToolResult):
                    for part in result.parts:
                        yield part
                    if result.footer and result.footer not in footers:
                        footers.append(result.footer)
                    result = result.text
                results.append(result)
                messages.append(ToolMessage(result, tool_call_id=call["id"] or call["name"]))
        answer = honest_answer("".join(pieces), results)
        yield Text("\n\n".join([answer, *footers]))
        await self.storage.append_messages(
            conversation, [("assistant", answer, self.count_tokens(answer))]
        )

    def context(
        self, turn: Turn, history: Sequence[StoredMessage]
    ) -> tuple[list[BaseMessage], str]:
        """System prompt + as much recent history as fits + the (maybe shortened) message."""
        system = self._system_prompt(turn)
        budget = (
            self.context_window
            - self.llm.max_tokens
            - self.settings.context_reserve_tokens
            - self.count_tokens(system)
        )
        text = self._fit(turn.text, max(budget, 16))
        budget -= self.count_tokens(text)
        kept: list[BaseMessage] = []
        for stored in reversed(history):
            cost = stored.token_count or self.count_tokens(stored.content)
            if cost > budget:
                break
            budget -= cost
            kept.append(_to_message(stored))
        kept.reverse()
        return [SystemMessage(system), *kept, HumanMessage(text)], text

    def _system_prompt(self, turn: Turn) -> str:
        base = turn.system_prompt or self.settings.system_prompt
        o = turn.origin
        where = (
            f"{onepass.CONTEXT} platform {o.platform}, "
            f"server {o.server_name or o.server_id}, channel {o.channel_name or o.channel_id}, "
            f"user {o.user_name or o.user_id}."
        )
        return f"{base}\n{where}"

    def _fit(self, text: str, budget: int) -> str:
        """Shorten ``text`` to ``budget`` tokens, keeping its start and its end."""
        tokens = self.count_tokens(text)
        if tokens <= budget:
            return text
        keep = max(int(len(text) * budget / tokens * 0.9) - len(TRUNCATION_MARK), 8)
        while True:
            head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3 :]
            fitted = head + TRUNCATION_MARK + tail
            if self.count_tokens(fitted) <= budget or keep <= 8:
                return fitted
            keep = int(keep * 0.8)

    async def _call_tool(
        self, tools: dict[str, BaseTool], name: str, args: dict[str, Any], turn: Turn
    ) -> str | ToolResult:
        """Run one tool call; any failure becomes a message to the model, not a crash."""
        tool = tools.get(name)
        if tool is None:
            return f"error: there is no tool named {name!r}; tools: {', '.join(tools)}"
        try:
            result = await tool.ainvoke(args, config=turn.tool_config)
        except UserError as exc:  # expected: bad arguments, a quota; one line, no traceback
            log.info("tool %s refused: %s", name, exc.user_message)
            return f"error: the tool {name} failed: {exc.user_message}"
        except Exception as exc:
            # Raw exception text (paths, hosts, SQL) stays in the log, not in the prompt.
            error_id = new_error_id()
            log.warning("[%s] tool %s failed", error_id, name, exc_info=exc)
            return f"error: the tool {name} failed (error id {error_id})"
        return result if isinstance(result, ToolResult) else str(result)


def honest_answer(text: str, tool_results: Sequence[str]) -> str:
    """The reply's text, or an honest line when the model gave no answer of its own.

    Small models sometimes end a turn by only echoing the tool call ("Calling tool
    calculate with {...}.") or with nothing at all; the user then gets what the tools
    returned, or a plain admission, never an empty or tool-call-only reply.
    """
    kept = [line for line in text.strip().splitlines() if not _TOOL_ECHO.match(line.strip())]
    answer = "\n".join(kept).strip()
    if answer:
        return answer
    useful = [r for r in tool_results if r.strip() and not r.startswith("error:")]
    useful = list(dict.fromkeys(useful))  # once each
    if useful:
        return "I did not finish an answer; the tools returned:\n" + "\n".join(useful)
    return "Sorry, I could not come up with an answer to that."


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk | None:
    """Merge the tool-call chunks of one model step (text was streamed separately)."""
    if not chunks:
        return None
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def _call_key(call: ToolCall) -> str:
    """A tool call's identity within a turn: its name and arguments."""
    return json.dumps([call["name"], call["args"]], sort_keys=True, default=str)


def _estimate(text: str) -> int:
    """Token estimate for models without a tokenizer: about four characters a token."""
    return len(text) // 4 + 1


def _text_of(chunk: BaseMessage) -> str:
    content = chunk.content
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or part.get("type") == "text"
    )


def _to_message(stored: StoredMessage) -> BaseMessage:
    if stored.role == "assistant":
        return AIMessage(stored.content)
    return HumanMessage(stored.content)
