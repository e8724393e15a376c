"""The in-process llama.cpp engine: one model, a fair request queue, continuous batching.

``LlamaEngine`` owns one ``llama_cpp.Llama`` and one ``BatchScheduler`` on the same
weights. Async callers submit a ``ChatRequest`` and get OpenAI-format chat-completion
chunks back. Waiting requests are taken round-robin across ``fairness_key`` values (FIFO
within a key); llama-cpp-python's chat handler renders each into prompt tokens in a worker
thread, and the scheduler decodes up to ``parallel`` of them together, one
``llama_decode`` per step, reusing the cached prefix of a conversation's previous turn.
Tokens reach the event loop through ``loop.call_soon_threadsafe``.

This module must never block the event loop, never decode outside the scheduler's
thread, and never let an over-long prompt reach llama (``fit_to_context`` clamps and
truncates first).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp

from agents.batching import BatchScheduler, Generation, SchedulerStats
from agents.completions import ScheduledLlama
from agents.llama_logs import route_llama_logs
from agents.requests import ChatRequest, FairQueue, fit_to_context
from core.errors import ModelError

HANDLER_N_CTX = 256
"""The ``Llama`` object's own context: it renders templates, the scheduler decodes."""


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
    generations: list[Generation] = field(default_factory=list)

    def send(self, item: Any) -> None:
        """Hand ``item`` to the waiting coroutine; a closed loop cancels the job."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:
            self.cancel()

    def cancel(self) -> None:
        """The caller is gone: stop its generations at the next step (any thread)."""
        self.cancelled.set()
        for generation in list(self.generations):
            generation.cancel()

    def adopt(self, generation: Generation) -> None:
        """Track a generation the chat handler submitted for this job."""
        self.generations.append(generation)
        if self.cancelled.is_set():
            generation.cancel()


_DONE = object()


class LlamaEngine:
    """One model behind an async, fair, cancellable request API, batched ``parallel`` wide.

    Requests wait in a ``FairQueue``; up to ``2 * parallel`` of them are formatted by
    llama-cpp-python's chat handler in worker threads at a time (so a freed slot never
    waits for a prompt to be rendered), and their completions run in the
    ``BatchScheduler``. ``llama`` provides the vocabulary, chat templates and metadata;
    the scheduler decodes on its own context.
    """

    def __init__(
        self,
        llama: Any,
        *,
        parallel: int = 4,
        n_ctx: int | None = None,
        n_batch: int = 512,
        n_threads: int | None = None,
    ) -> None:
        self._llama = llama
        threads = n_threads or os.cpu_count() or 1
        self._scheduler = BatchScheduler(
            llama._model.model,
            parallel=parallel,
            n_ctx=n_ctx or int(llama.n_ctx()),
            n_batch=n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            base=llama.context_params,
        )
        self._queue: FairQueue[_Job] = FairQueue()
        self._cond = threading.Condition()
        self._capacity = threading.Semaphore(2 * parallel)
        self._pool = ThreadPoolExecutor(2 * parallel, thread_name_prefix="llama-chat")
        self._in_flight: dict[str, int] = {}
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
        parallel: int = 4,
        verbose: bool = False,
    ) -> LlamaEngine:
        """Load the GGUF at ``path`` (blocking: call through ``asyncio.to_thread``).

        ``n_ctx`` is each conversation's window: the scheduler's context holds
        ``parallel`` of them. ``n_gpu_layers=None`` offloads every layer when llama.cpp
        was built with GPU support and none otherwise. Raises ``ModelError`` when the file
        cannot be loaded.
        """
        route_llama_logs()
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        try:
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=HANDLER_N_CTX,  # templates and vocabulary only: the scheduler decodes
                n_gpu_layers=n_gpu_layers,
                n_threads=n_threads,
                n_batch=min(n_batch, HANDLER_N_CTX),
                chat_format=chat_format,
                seed=seed if seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=verbose,
            )
            return cls(llama, parallel=parallel, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"cannot load model {path}: {exc}") from exc

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama``: its vocabulary, templates and metadata (its
        own small context is never used by the engine)."""
        return self._llama

    @property
    def n_ctx(self) -> int:
        """Each conversation's context window in tokens."""
        return self._scheduler.n_ctx

    @property
    def n_params(self) -> int:
        """The model's parameter count."""
        return int(self._llama._model.n_params())

    @property
    def parallel(self) -> int:
        """How many requests decode together."""
        return self._scheduler.parallel

    @property
    def scheduler_stats(self) -> SchedulerStats:
        """The scheduler's counters (steps, prompt tokens evaluated and reused)."""
        return self._scheduler.stats

    def forget_prefixes(self) -> None:
        """Drop the slots' cached prompts, a busy slot's when it is done (benchmarks: every
        run pays in full)."""
        self._scheduler.forget_prefixes()

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes (the tokenizer only reads the vocabulary: any thread)."""
        return len(self._tokenize(text))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        """Chat-completion chunks as they are generated.

        Closing or cancelling the consumer stops generation at the next step.
        """
        job = self._submit(request, stream=True)
        try:
            while (item := await job.out.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancel()

    async def complete_chat(self, request: ChatRequest) -> dict[str, Any]:
        """The whole chat completion (a cancelled caller's request stops or never starts)."""
        job = self._submit(request, stream=False)
        try:
            item = await job.out.get()
        finally:
            job.cancel()
        if isinstance(item, BaseException):
            raise item
        return dict(item)

    def close(self) -> None:
        """Stop taking requests, fail the waiting ones, stop the scheduler, free the model."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while (waiting := self._queue.pop()) is not None:
                waiting[1].send(ModelError("the LLM engine closed before serving this request"))
        self._thread.join()
        self._scheduler.close()
        self._pool.shutdown(wait=True)
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
            if self._closed:
                return None
            popped = self._queue.pop(lambda key: self._in_flight.get(key, 0))
            assert popped is not None
            key, job = popped
            if not job.cancelled.is_set():
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return job

    def _run(self) -> None:
        while True:
            self._capacity.acquire()
            job = self._next_job()
            if job is None:
                return
            if job.cancelled.is_set():
                self.stats.cancelled += 1
                self._capacity.release()
                continue
            self._pool.submit(self._serve_job, job)

    def _serve_job(self, job: _Job) -> None:
        try:
            self._serve(job)
        except Exception as exc:  # one request's failure is that request's answer
            error = exc if isinstance(exc, ModelError) else ModelError(f"llama.cpp failed: {exc}")
            if error is not exc:
                error.__cause__ = exc
            job.send(error)
        else:
            job.send(_DONE)
            if job.cancelled.is_set():
                self.stats.cancelled += 1
            else:
                self.stats.served += 1
        finally:
            self._done(job.request.fairness_key)

    def _done(self, key: str) -> None:
        with self._cond:
            left = self._in_flight.pop(key, 1) - 1
            if left > 0:  # only keys with work in flight stay: bounded by 2 * parallel
                self._in_flight[key] = left
        self._capacity.release()

    def _serve(self, job: _Job) -> None:
        request = fit_to_context(job.request, self.n_ctx, self._tokenize, self._detokenize)
        starts = request.grammar_starts or ""
        llama = ScheduledLlama(self._llama, self._scheduler, job.adopt, starts)
        # Llama's own method with the stand-in as self: the same handler, defaults and
        # conversions as a plain create_chat_completion, completions in the scheduler.
        result = llama_cpp.Llama.create_chat_completion(
            llama,  # type: ignore[arg-type]
            **_llama_kwargs(request),
            stream=job.stream,
        )
        if not job.stream:
            job.send(result)
            return
        chunks: Iterator[Any] = iter(result)
        try:
            for chunk in chunks:
                if job.cancelled.is_set():
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
