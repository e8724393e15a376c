"""llama-cpp-python's chat handlers, with their text completions served by the scheduler.

A chat handler (``chatml``, ``gemma``, a GGUF's own Jinja template, the function-calling
formats) renders messages into prompt tokens, turns ``response_format`` and forced tool
choices into grammars, and parses what comes back; for the completion itself it calls
``llama.create_completion``. ``ScheduledLlama`` stands in for the ``Llama`` there: every
attribute is the real model's (vocabulary, metadata, templates) except
``create_completion``, which becomes a ``Generation`` in the ``BatchScheduler``. So every
chat format keeps working while many chats share one batch.

This module must never decode itself, and never hide a cancelled request from the
scheduler: closing a stream cancels its generation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import llama_cpp

from agents.batching import BatchScheduler, Finish, Generation, Sampling
from core.errors import ModelError

UNSUPPORTED = (
    "logprobs",
    "logits_processor",
    "stopping_criteria",
    "suffix",
    "echo",
    "logit_bias",
    "mirostat_mode",
)
"""Completion options the scheduler cannot honour; a request using them is refused."""


class ScheduledLlama:
    """A ``Llama`` whose ``create_completion`` runs in a ``BatchScheduler``.

    ``on_generation`` sees each ``Generation`` as it is submitted (the engine keeps them
    to cancel a request that its caller abandoned). ``grammar_starts`` make the
    request's grammar lazy (see ``Sampling``).
    """

    def __init__(
        self,
        llama: Any,
        scheduler: BatchScheduler,
        on_generation: Callable[[Generation], None] = lambda _: None,
        grammar_starts: str = "",
    ) -> None:
        self._llama = llama
        self._scheduler = scheduler
        self._on_generation = on_generation
        self._starts = grammar_starts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def __call__(self, prompt: str | list[int], **kwargs: Any) -> Any:
        return self.create_completion(prompt, **kwargs)

    def create_completion(
        self, prompt: str | list[int], *, stream: bool = False, **kwargs: Any
    ) -> Any:
        """A text completion in llama-cpp-python's format (an iterator when ``stream``)."""
        if used := [k for k in UNSUPPORTED if kwargs.get(k)]:
            raise ModelError(f"the batching engine does not support {', '.join(used)}")
        tokens = self._tokens(prompt)
        generation = Generation(
            tokens,
            max_tokens=_max_tokens(kwargs.get("max_tokens"), self._scheduler.n_ctx, len(tokens)),
            sampling=_sampling(kwargs, self._starts),
            stop=_stops(kwargs.get("stop")),
        )
        self._on_generation(generation)
        self._scheduler.submit(generation)
        head = {
            "id": f"cmpl-{uuid.uuid4()}",
            "created": int(time.time()),
            "model": kwargs.get("model") or self._llama.model_path,
        }
        chunks = _chunks(generation, head)
        return chunks if stream else _whole(chunks, head)

    def _tokens(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            return prompt
        # As Llama.create_completion does for text: its own BOS, special tokens parsed.
        tokens = self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        bos = self._llama.token_bos()
        if self._llama._model.add_bos_token() and bos != -1:
            tokens = [bos, *tokens]
        return list(tokens)


def _chunks(generation: Generation, head: dict[str, Any]) -> Iterator[dict[str, Any]]:
    try:
        while True:
            event = generation.events.get()
            if isinstance(event, ModelError):
                raise event
            if isinstance(event, Finish):
                yield _chunk(head, "", event)
                return
            yield _chunk(head, event, None)
    finally:
        generation.cancel()  # a no-op once finished; stops it when the reader left early


def _chunk(head: dict[str, Any], text: str, finish: Finish | None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        **head,
        "object": "text_completion",
        "choices": [
            {
                "text": text,
                "index": 0,
                "logprobs": None,
                "finish_reason": _reason(finish) if finish else None,
            }
        ],
    }
    if finish is not None:
        chunk["usage"] = _usage(finish)
    return chunk


def _whole(chunks: Iterator[dict[str, Any]], head: dict[str, Any]) -> dict[str, Any]:
    text: list[str] = []
    last: dict[str, Any] = {}
    for last in chunks:
        text.append(last["choices"][0]["text"])
    return {
        **head,
        "object": "text_completion",
        "choices": [
            {
                "text": "".join(text),
                "index": 0,
                "logprobs": None,
                "finish_reason": last["choices"][0]["finish_reason"],
            }
        ],
        "usage": last["usage"],
    }


def _reason(finish: Finish) -> str:
    return "length" if finish.reason == "length" else "stop"


def _usage(finish: Finish) -> dict[str, Any]:
    # OpenAI's own field for prompt tokens served from cache: prefix reuse, visible.
    return {
        "prompt_tokens": finish.prompt_tokens,
        "completion_tokens": finish.completion_tokens,
        "total_tokens": finish.prompt_tokens + finish.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": finish.reused_tokens},
    }


def _max_tokens(value: Any, n_ctx: int, prompt: int) -> int:
    room = max(1, n_ctx - prompt)
    return room if value is None or int(value) <= 0 else min(int(value), room)


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(s) for s in value]


def _sampling(kwargs: dict[str, Any], starts: str) -> Sampling:
    grammar = kwargs.get("grammar")
    seed = kwargs.get("seed")
    defaults = Sampling()
    return Sampling(
        temperature=float(kwargs.get("temperature", defaults.temperature)),
        top_p=float(kwargs.get("top_p", defaults.top_p)),
        top_k=int(kwargs.get("top_k", defaults.top_k)),
        min_p=float(kwargs.get("min_p", defaults.min_p)),
        typical_p=float(kwargs.get("typical_p", defaults.typical_p)),
        repeat_penalty=float(kwargs.get("repeat_penalty", defaults.repeat_penalty)),
        frequency_penalty=float(kwargs.get("frequency_penalty", defaults.frequency_penalty)),
        presence_penalty=float(kwargs.get("presence_penalty", defaults.presence_penalty)),
        seed=llama_cpp.LLAMA_DEFAULT_SEED if seed is None else int(seed),
        grammar=None if grammar is None else str(grammar._grammar),
        grammar_root=defaults.grammar_root if grammar is None else str(grammar._root),
        grammar_starts=starts if grammar is not None else "",
    )
