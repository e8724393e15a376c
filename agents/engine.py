"""The in-process llama.cpp engine: one model, one worker thread, a fair request queue.

``LlamaEngine`` owns exactly one ``llama_cpp.Llama``. Async callers submit a
``ChatRequest`` and get OpenAI-format chat-completion chunks back; every blocking llama
call runs in the engine's single worker thread (the model is not thread-safe) and tokens
reach the event loop through ``loop.call_soon_threadsafe``. Waiting requests are served
round-robin across ``fairness_key`` values (FIFO within a key). A later
continuous-batching scheduler replaces ``_Worker``/``FairQueue`` without touching callers.

This module must never block the event loop, never run llama from two threads, and never
let an over-long prompt reach llama (``fit_to_context`` clamps and truncates first).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import llama_cpp

from core.errors import ModelError

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
    ``tools``/``tool_choice`` pass through to the chat handler (native tool calling).
    """

    messages: list[dict[str, Any]]
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: list[str] | None = None
    grammar: Any = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    fairness_key: str = "default"


class FairQueue(Generic[T]):
    """Round-robin across keys, FIFO within a key. Not thread-safe: guard it with a lock."""

    def __init__(self) -> None:
        self._lanes: OrderedDict[str, deque[T]] = OrderedDict()

    def push(self, key: str, item: T) -> None:
        """Queue ``item`` behind the others of ``key``; a new key joins the end of the round."""
        self._lanes.setdefault(key, deque()).append(item)

    def pop(self) -> T | None:
        """The next item in round-robin order, or None when empty."""
        if not self._lanes:
            return None
        key, lane = next(iter(self._lanes.items()))
        item = lane.popleft()
        del self._lanes[key]
        if lane:
            self._lanes[key] = lane  # the key goes to the back of the round
        return item

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())


@dataclass
class EngineStats:
    """Counters for observability: requests finished, and requests cancelled by callers."""

    served: int = 0
    cancelled: int = 0


@dataclass
class _Job:
    request: ChatRequest
    stream: bool
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def send(self, item: Any) -> None:
        """Hand ``item`` to the waiting coroutine; a closed loop cancels the job."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:
            self.cancelled.set()


_DONE = object()


class LlamaEngine:
    """One ``llama_cpp.Llama`` behind an async, fair, cancellable request API."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._queue: FairQueue[_Job] = FairQueue()
        self._cond = threading.Condition()
        self._closed = False
        self.stats = EngineStats()
        self._thread = threading.Thread(target=self._run, name="llama-engine", daemon=True)
        self._thread.start()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        n_ctx: int,
        n_gpu_layers: int | None,
        n_threads: int | None,
        n_batch: int,
        chat_format: str,
        seed: int,
        verbose: bool = False,
    ) -> LlamaEngine:
        """Load the GGUF at ``path`` (blocking: call through ``asyncio.to_thread``).

        ``n_gpu_layers=None`` offloads every layer when llama.cpp was built with GPU
        support and none otherwise. Raises ``ModelError`` when the file cannot be loaded.
        """
        _route_llama_logs()
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        try:
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                n_threads=n_threads,
                n_batch=min(n_batch, n_ctx),
                chat_format=chat_format,
                seed=seed if seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"cannot load model {path}: {exc}") from exc
        return cls(llama)

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (for benchmarks that compare against it raw;
        never call it while the engine may be serving a request)."""
        return self._llama

    @property
    def n_ctx(self) -> int:
        """The context window in tokens."""
        return int(self._llama.n_ctx())

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes (the tokenizer only reads the vocabulary: any thread)."""
        return len(self._tokenize(text))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        """Chat-completion chunks as they are generated.

        Closing or cancelling the consumer stops generation at the next token.
        """
        job = self._submit(request, stream=True)
        try:
            while (item := await job.out.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancelled.set()

    async def complete_chat(self, request: ChatRequest) -> dict[str, Any]:
        """The whole chat completion (one llama call; a cancelled caller skips it if queued)."""
        job = self._submit(request, stream=False)
        try:
            item = await job.out.get()
        finally:
            job.cancelled.set()
        if isinstance(item, BaseException):
            raise item
        return dict(item)

    def close(self) -> None:
        """Stop the worker after the current request and free the model."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while (job := self._queue.pop()) is not None:
                job.send(ModelError("the LLM engine closed before serving this request"))
        self._thread.join()
        self._llama.close()

    def _submit(self, request: ChatRequest, *, stream: bool) -> _Job:
        if self._closed:
            raise ModelError("the LLM engine is closed")
        job = _Job(request, stream, asyncio.get_running_loop())
        with self._cond:
            self._queue.push(request.fairness_key, job)
            self._cond.notify()
        return job

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            return None if self._closed else self._queue.pop()

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            if job.cancelled.is_set():
                self.stats.cancelled += 1
                continue
            try:
                self._serve(job)
            except Exception as exc:  # the worker must survive any one request
                error = ModelError(f"llama.cpp failed: {exc}")
                error.__cause__ = exc
                job.send(error)
            else:
                job.send(_DONE)
                self.stats.served += not job.cancelled.is_set()

    def _serve(self, job: _Job) -> None:
        request = fit_to_context(job.request, self.n_ctx, self._tokenize, self._detokenize)
        result = self._llama.create_chat_completion(**_llama_kwargs(request), stream=job.stream)
        if not job.stream:
            job.send(result)
            return
        chunks: Iterator[dict[str, Any]] = result
        try:
            for chunk in chunks:
                if job.cancelled.is_set():
                    self.stats.cancelled += 1
                    return
                job.send(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _tokenize(self, text: str) -> list[int]:
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _detokenize(self, tokens: list[int]) -> str:
        return bytes(self._llama.detokenize(tokens)).decode("utf-8", errors="ignore")


def _llama_kwargs(request: ChatRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "stop": request.stop or [],
    }
    optional = {
        "grammar": request.grammar,
        "response_format": request.response_format,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    return kwargs


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


# llama.cpp's ggml_log_level: 1 DEBUG, 2 INFO, 3 WARN, 4 ERROR, 5 continue the last line.
# llama-cpp-python's own mapping predates that numbering and prints llama.cpp's routine
# warnings (e.g. about its KV-cache layout, at every load) straight to stderr, over the
# console. Route them into logging instead, one level quieter except errors: what users
# need to see is our ModelError, not llama.cpp's internal choices.
_LLAMA_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
_llama_log = logging.getLogger("llama.cpp")


class _LlamaLogs:
    """Collects llama.cpp's log fragments into lines for ``logging``."""

    def __init__(self) -> None:
        self.level = logging.DEBUG
        self.partial = ""

    def feed(self, level: int, text: str) -> None:
        if level != 5:
            self.level = _LLAMA_LEVELS.get(level, logging.DEBUG)
        self.partial += text
        while "\n" in self.partial:
            line, self.partial = self.partial.split("\n", 1)
            if line.strip():
                _llama_log.log(self.level, "%s", line)


_logs = _LlamaLogs()


@llama_cpp.llama_log_callback
def _on_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    _logs.feed(int(level), text.decode("utf-8", errors="replace"))


def _route_llama_logs() -> None:
    llama_cpp.llama_log_set(_on_llama_log, ctypes.c_void_p(0))
