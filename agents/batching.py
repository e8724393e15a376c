"""Continuous batching: many generations in one llama.cpp context, one ``llama_decode`` a step.

``BatchScheduler`` owns a llama.cpp context with ``parallel`` sequences (slots), each with
its own ``n_ctx`` window, and one thread that runs the step loop:

1. queued generations take free slots — the slot whose cached tokens share the longest
   prefix with the new prompt (its previous turn, usually), the least recently used one
   on a tie or when no slot shares more than a chat template's first tokens — and only
   the tokens after the common prefix are evaluated; when another slot (a busy one, say)
   shares a much longer prefix, its cache is copied over first (a new conversation
   reuses the system prompt and tool list another one evaluated);
2. one batch is built: one token for every generating slot, then prompt chunks of slots
   still reading their prompt, up to ``n_batch`` tokens in all (a long prompt is spread
   over steps instead of stalling the others);
3. one ``llama_decode``; every slot whose logits came out samples with its own sampler
   chain (temperature, top-p, seed, grammar), detokenises incrementally and checks its
   stop strings and token budget; a finished or cancelled slot is free at once.

This module knows tokens and text, not chat: prompts arrive tokenised. It must never be
driven from two threads (only the step thread touches the context) and never let one
generation's failure stop the others.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from agents.sampling import Sampling, StopText, new_sampler, token_piece
from core.errors import ModelError

log = logging.getLogger(__name__)

SHARE_MIN_TOKENS = 32
"""A new prompt takes another slot's cache when that one shares at least this many more
tokens with it than the slot it lands on (the system prompt and tool list of a new
conversation, held by a busy slot): a copy moves the slot's whole window, so a few
tokens are cheaper to evaluate again."""


@dataclass(frozen=True)
class Finish:
    """How a generation ended: ``stop`` (end of turn or a stop string), ``length`` (token
    budget or window), ``cancelled``; and the token counts."""

    reason: str
    prompt_tokens: int
    completion_tokens: int
    reused_tokens: int


class Generation:
    """One prompt to continue; the scheduler fills ``events`` with ``str`` pieces of text,
    then one ``Finish`` or one ``ModelError``. ``cancel()`` works from any thread."""

    def __init__(
        self, prompt: list[int], *, max_tokens: int, sampling: Sampling, stop: list[str]
    ) -> None:
        if not prompt:
            raise ModelError("an empty prompt cannot be continued")
        self.prompt = prompt
        self.max_tokens = max(1, max_tokens)
        self.sampling = sampling
        self.stop = [s for s in stop if s]
        self.events: queue.SimpleQueue[str | Finish | ModelError] = queue.SimpleQueue()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop generating at the next step (or never start, if still queued)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` was called."""
        return self._cancelled.is_set()


@dataclass
class SchedulerStats:
    """Counters: generations finished, cancelled, prompt tokens evaluated and reused."""

    finished: int = 0
    cancelled: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    prefix_copies: int = 0
    steps: int = 0


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV is in the cache
    last_used: int = 0
    gen: Generation | None = None
    pending: deque[int] = field(default_factory=deque)  # prompt tokens still to decode
    next_token: int | None = None  # sampled, not yet decoded
    sampler: Any = None
    lead: str | None = None  # a lazy grammar's undecided start of the reply
    text: StopText | None = None
    produced: int = 0
    reused: int = 0
    forget: bool = False  # drop the cache once the generation ends


class BatchScheduler:
    """``parallel`` sequences of one model, decoded together (see the module docstring).

    ``model`` is the ``llama_model`` pointer (``Llama._model.model``); the scheduler makes
    its own context on it (``base`` gives the other context parameters: rope, attention,
    cache types — a ``Llama``'s ``context_params``) and frees it in ``close()``.
    """

    def __init__(
        self,
        model: Any,
        *,
        parallel: int,
        n_ctx: int,
        n_batch: int,
        n_threads: int | None,
        n_threads_batch: int | None,
        base: Any = None,
    ) -> None:
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.parallel = parallel
        self.n_ctx = n_ctx
        self.n_batch = max(n_batch, parallel)
        self._ctx = _new_context(
            model, base, parallel, n_ctx, self.n_batch, n_threads, n_threads_batch
        )
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._slots = [_Slot(seq) for seq in range(parallel)]
        self._queue: deque[Generation] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._forget = False
        self._pieces: dict[int, bytes] = {}
        self._clock = itertools.count(1)
        self.stats = SchedulerStats()
        self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
        self._thread.start()

    def submit(self, generation: Generation) -> None:
        """Queue ``generation`` (FIFO; the caller orders fairly before this point)."""
        if len(generation.prompt) >= self.n_ctx:
            raise ModelError(f"prompt of {len(generation.prompt)} tokens exceeds the window")
        with self._cond:
            if self._closed:
                raise ModelError("the LLM engine is closed")
            self._queue.append(generation)
            self._cond.notify()

    def forget_prefixes(self) -> None:
        """Drop what the slots cache (a busy slot's once it is done), so the next prompts
        are evaluated in full (for benchmarks that compare against an uncached run)."""
        with self._cond:
            self._forget = True
            self._cond.notify()

    @property
    def busy_slots(self) -> int:
        """Slots generating now (a snapshot)."""
        return sum(slot.gen is not None for slot in self._slots)

    def close(self) -> None:
        """Finish the current step, fail what is queued or running, free the context."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        for slot in self._slots:
            if slot.gen is not None:
                self._release(slot, error=ModelError("the LLM engine closed mid-answer"))
        while self._queue:
            self._queue.popleft().events.put(ModelError("the LLM engine closed first"))
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)

    # The step thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._closed or self._queue or self._forget or self.busy_slots):
                    self._cond.wait()
                if self._closed:
                    return
                if self._forget:
                    self._forget = False
                    for slot in self._slots:
                        slot.forget = True
                        if slot.gen is None:
                            self._clear(slot)
                admitted = self._take_queued()
            for slot, generation in admitted:
                try:
                    self._start(slot, generation)
                except ModelError as exc:
                    self._release(slot, error=exc)
            try:
                self._step()
            except Exception as exc:  # one bad step must not end the loop
                log.exception("batch step failed")
                self._fail_all(ModelError(f"llama.cpp failed: {exc}"))

    def _take_queued(self) -> list[tuple[_Slot, Generation]]:
        """Queued generations with the free slot each takes."""
        taken: list[tuple[_Slot, Generation]] = []
        free = [slot for slot in self._slots if slot.gen is None]
        while self._queue and free:
            generation = self._queue.popleft()
            if generation.cancelled:
                generation.events.put(Finish("cancelled", len(generation.prompt), 0, 0))
                self.stats.cancelled += 1
                continue
            *_, slot = max(
                ((_match(s.cached, generation.prompt), -s.last_used, s) for s in free),
                key=lambda choice: choice[:2],
            )
            free.remove(slot)
            slot.gen = generation  # claimed now; set up by _start outside the lock
            taken.append((slot, generation))
        return taken

    def _start(self, slot: _Slot, generation: Generation) -> None:
        prompt = generation.prompt
        common = _common_prefix(slot.cached, prompt)
        donor, shared = max(
            (
                (s, _common_prefix(s.cached, prompt))
                for s in self._slots
                if s is not slot and not s.forget
            ),
            key=lambda choice: choice[1],
            default=(None, 0),
        )
        if donor is not None and shared - common >= SHARE_MIN_TOKENS:
            # Cells now, data at the next decode (before that step writes anything).
            llama_cpp.llama_memory_seq_cp(self._memory, donor.seq, slot.seq, -1, -1)
            common = shared
            self.stats.prefix_copies += 1
        keep = min(common, len(prompt) - 1)  # the last prompt token is read again: logits
        if not llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, keep, -1):
            llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            keep = 0
        slot.cached = list(prompt[:keep])
        slot.pending = deque(prompt[keep:])
        slot.reused = keep
        slot.next_token = None
        slot.produced = 0
        slot.text = StopText(generation.stop)
        lazy = generation.sampling.grammar is not None and bool(generation.sampling.grammar_starts)
        slot.sampler = new_sampler(self._vocab, generation.sampling, constrained=not lazy)
        slot.lead = "" if lazy else None
        slot.last_used = next(self._clock)
        self.stats.prompt_tokens_reused += keep

    def _step(self) -> None:
        for slot in self._slots:
            if slot.gen is not None and slot.gen.cancelled:
                self._release(slot, finish="cancelled")
        batch = self._batch
        batch.n_tokens = 0
        outputs: list[tuple[_Slot, int]] = []
        for slot in self._slots:
            if slot.gen is not None and slot.next_token is not None:
                outputs.append((slot, self._add(slot, slot.next_token, logits=True)))
        budget = self.n_batch - batch.n_tokens
        for slot in sorted(self._slots, key=lambda s: s.last_used):
            if slot.gen is None or not slot.pending or budget <= 0:
                continue
            take = min(budget, len(slot.pending))
            budget -= take
            self.stats.prompt_tokens_evaluated += take
            for _ in range(take):
                token = slot.pending.popleft()
                index = self._add(slot, token, logits=not slot.pending)
            if not slot.pending:
                outputs.append((slot, index))
        if batch.n_tokens == 0:
            return
        status = llama_cpp.llama_decode(self._ctx, batch)
        self.stats.steps += 1
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        for slot, index in outputs:
            self._sample(slot, index)

    def _add(self, slot: _Slot, token: int, *, logits: bool) -> int:
        batch, i = self._batch, self._batch.n_tokens
        batch.token[i] = token
        batch.pos[i] = len(slot.cached)
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = slot.seq
        batch.logits[i] = logits
        batch.n_tokens = i + 1
        slot.cached.append(token)
        return i

    def _sample(self, slot: _Slot, index: int) -> None:
        generation, text = slot.gen, slot.text
        assert generation is not None and text is not None
        token = int(llama_cpp.llama_sampler_sample(slot.sampler, self._ctx, index))
        if slot.lead is not None:
            token = self._lazy_grammar(slot, index, token)
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._release(slot, finish="stop")
            return
        slot.produced += 1
        piece, stopped = text.feed(self._piece(token))
        if piece:
            generation.events.put(piece)
        if stopped:
            self._release(slot, finish="stop")
        elif slot.produced >= generation.max_tokens or len(slot.cached) + 1 >= self.n_ctx:
            self._release(slot, finish="length")
        else:
            slot.next_token = token

    def _lazy_grammar(self, slot: _Slot, index: int, token: int) -> int:
        """Free text until the reply's first visible character; if that is one of the
        grammar's ``grammar_starts``, take the token back and sample it (and the rest)
        under the grammar, from the same logits."""
        assert slot.gen is not None and slot.lead is not None
        slot.lead += self._piece(token).decode("utf-8", errors="ignore")
        lead = slot.lead.lstrip()
        if not lead:
            return token
        slot.lead = None
        sampling = slot.gen.sampling
        if lead[0] not in sampling.grammar_starts:
            return token
        llama_cpp.llama_sampler_free(slot.sampler)
        slot.sampler = new_sampler(self._vocab, sampling, constrained=True)
        return int(llama_cpp.llama_sampler_sample(slot.sampler, self._ctx, index))

    def _piece(self, token: int) -> bytes:
        """``token``'s bytes, looked up once per token id (bounded by the vocabulary)."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = token_piece(self._vocab, token)
        return piece

    def _release(
        self, slot: _Slot, *, finish: str = "stop", error: ModelError | None = None
    ) -> None:
        generation = slot.gen
        if generation is not None:
            if error is not None:
                generation.events.put(error)
            else:
                if slot.text is not None and finish != "cancelled" and (rest := slot.text.flush()):
                    generation.events.put(rest)
                generation.events.put(
                    Finish(finish, len(generation.prompt), slot.produced, slot.reused)
                )
                self.stats.finished += finish != "cancelled"
                self.stats.cancelled += finish == "cancelled"
        if slot.sampler is not None:
            llama_cpp.llama_sampler_free(slot.sampler)
        if slot.pending:  # stopped mid-prompt: what was queued never reached the cache
            slot.pending.clear()
        slot.gen, slot.sampler, slot.text, slot.next_token = None, None, None, None
        slot.last_used = next(self._clock)
        if slot.forget:
            self._clear(slot)

    def _clear(self, slot: _Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
        slot.cached, slot.forget = [], False

    def _fail_all(self, error: ModelError) -> None:
        for slot in self._slots:
            if slot.gen is not None:
                self._release(slot, error=error)
            self._clear(slot)  # the cache of a failed step is unknown: never reuse it


def _match(cached: list[int], prompt: list[int]) -> int:
    """How much of ``prompt`` a slot holding ``cached`` saves: its common prefix, or 0
    when that is too short to be worth the other conversation it would push out (a
    chat template's first tokens, shared by every prompt)."""
    common = _common_prefix(cached, prompt)
    return common if common >= min(SHARE_MIN_TOKENS, len(prompt) - 1) else 0


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _new_context(
    model: Any,
    base: Any,
    parallel: int,
    n_ctx: int,
    n_batch: int,
    n_threads: int | None,
    n_threads_batch: int | None,
) -> Any:
    params = (
        llama_cpp.llama_context_default_params()
        if base is None
        else llama_cpp.llama_context_params.from_buffer_copy(base)
    )
    params.n_ctx = n_ctx * parallel  # not unified: each sequence gets n_ctx of its own
    params.n_seq_max = parallel
    params.kv_unified = False
    params.n_batch = n_batch
    params.n_ubatch = min(n_batch, 512)
    if n_threads is not None:
        params.n_threads = n_threads
    if n_threads_batch is not None:
        params.n_threads_batch = n_threads_batch
    params.swa_full = True  # sliding-window models keep whole prompts, so prefixes reuse
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, params)
    if not ctx:
        raise ModelError(f"llama.cpp could not make a context of {parallel} x {n_ctx} tokens")
    return ctx
