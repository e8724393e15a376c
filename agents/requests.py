"""What a chat request is, the fair order requests wait in, and fitting one to a window.

Pure data and arithmetic: no llama calls (token counting comes in as functions), no I/O.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MESSAGE_OVERHEAD_TOKENS = 8
"""Role markers and separators a chat template adds around each message (upper bound)."""
PROMPT_MARGIN_TOKENS = 16
_ELISION = " [...] "


@dataclass
class ChatRequest:
    """One chat completion: OpenAI-format messages plus sampling and constraints.

    ``grammar`` is a ``llama_cpp.LlamaGrammar``; ``response_format`` (``{"type":
    "json_object", "schema": ...}``) is the alternative the chat handler converts itself.
    ``grammar_starts`` makes ``grammar`` lazy: only a reply whose first visible
    character is one of these follows it.
    ``tools``/``tool_choice`` pass through to the chat handler (native tool calling).
    """

    messages: list[dict[str, Any]]
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: list[str] | None = None
    grammar: Any = None
    grammar_starts: str | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    fairness_key: str = "default"


class FairQueue(Generic[T]):
    """Round-robin across keys, FIFO within a key. Not thread-safe: guard it with a lock.

    ``pop(in_flight)`` prefers the keys with the fewest requests already being served
    (round-robin among equals), so a server whose backlog got in first does not also get
    the next free place while another server has nothing running.
    """

    def __init__(self) -> None:
        self._lanes: OrderedDict[str, deque[T]] = OrderedDict()

    def push(self, key: str, item: T) -> None:
        """Queue ``item`` behind the others of ``key``; a new key joins the end of the round."""
        self._lanes.setdefault(key, deque()).append(item)

    def pop(self, in_flight: Callable[[str], int] | None = None) -> tuple[str, T] | None:
        """The next ``(key, item)``, or None when empty."""
        if not self._lanes:
            return None
        keys = iter(self._lanes)
        key = next(keys) if in_flight is None else min(keys, key=in_flight)
        lane = self._lanes.pop(key)
        item = lane.popleft()
        if lane:
            self._lanes[key] = lane  # the key goes to the back of the round
        return key, item

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())


def fit_to_context(
    request: ChatRequest,
    n_ctx: int,
    tokenize: Callable[[str], list[int]],
    detokenize: Callable[[list[int]], str],
) -> ChatRequest:
    """``request`` shrunk so that prompt + reply fit in ``n_ctx`` tokens.

    The reply keeps room for ``min(max_tokens, n_ctx // 4)`` tokens; past that the oldest
    non-system messages are dropped (never the last one), then the middle of the longest
    message is cut out, until the estimated prompt fits. ``max_tokens`` is clamped last.
    """
    reply = max(1, min(request.max_tokens, n_ctx // 4))
    budget = n_ctx - reply - PROMPT_MARGIN_TOKENS
    extra = len(tokenize(str(request.tools))) if request.tools else 0
    messages = list(request.messages)
    sizes = [_message_tokens(m, tokenize) for m in messages]
    while extra + sum(sizes) > budget and (oldest := _oldest_droppable(messages)) is not None:
        del messages[oldest], sizes[oldest]
    for _ in range(len(messages)):
        if (excess := extra + sum(sizes) - budget) <= 0:
            break
        longest = max(range(len(sizes)), key=sizes.__getitem__)
        messages[longest] = _cut_middle(messages[longest], excess, tokenize, detokenize)
        sizes[longest] = _message_tokens(messages[longest], tokenize)
    room = n_ctx - extra - sum(sizes) - PROMPT_MARGIN_TOKENS
    return replace(request, messages=messages, max_tokens=max(1, min(request.max_tokens, room)))


def _message_tokens(message: dict[str, Any], tokenize: Callable[[str], list[int]]) -> int:
    content = message.get("content")
    text = content if isinstance(content, str) else str(content or "")
    calls = message.get("tool_calls")
    return len(tokenize(text + (str(calls) if calls else ""))) + MESSAGE_OVERHEAD_TOKENS


def _oldest_droppable(messages: list[dict[str, Any]]) -> int | None:
    """The oldest message that is neither a system message nor the latest one."""
    for i, message in enumerate(messages[:-1]):
        if message.get("role") != "system":
            return i
    return None


def _cut_middle(
    message: dict[str, Any],
    excess: int,
    tokenize: Callable[[str], list[int]],
    detokenize: Callable[[list[int]], str],
) -> dict[str, Any]:
    """``message`` with about ``excess`` tokens cut from the middle of its text."""
    content = message.get("content")
    tokens = tokenize(content if isinstance(content, str) else "")
    keep = max(0, len(tokens) - excess - len(tokenize(_ELISION)) - 1)
    head, tail = tokens[: keep // 2], tokens[len(tokens) - (keep - keep // 2) :]
    # Never empty: some templates (gemma) render an empty turn as a broken prompt.
    cut = detokenize(head) + _ELISION + detokenize(tail) if keep else _ELISION.strip()
    return {**message, "content": cut}
