"""How a slot picks its tokens and turns them into text: sampler chains, stop strings.

Each generation gets its own llama.cpp sampler chain (so a grammar-constrained slot and
free slots share a batch) and its own incremental detokeniser. Nothing here decodes.
"""

from __future__ import annotations

import codecs
import ctypes
from dataclasses import dataclass
from typing import Any

import llama_cpp

from core.errors import ModelError

PENALTY_LAST_N = 64
"""Tokens the repetition penalties look back over (llama-cpp-python's default)."""


@dataclass(frozen=True)
class Sampling:
    """How one generation picks its tokens (llama-cpp-python's defaults and meanings).

    ``temperature == 0`` is greedy. ``grammar`` is GBNF text (``root`` its start rule);
    a grammar-constrained slot only ever yields text the grammar accepts. With
    ``grammar_starts`` the grammar is lazy: a reply whose first visible character is one
    of these follows the grammar from that token on, any other reply is free text (a
    tool call among answers).
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int = llama_cpp.LLAMA_DEFAULT_SEED
    grammar: str | None = None
    grammar_root: str = "root"
    grammar_starts: str = ""


class StopText:
    """Incremental detokenised text with stop strings: what may be shown so far."""

    def __init__(self, stop: list[str]) -> None:
        self._stop = stop
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._held = ""

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """Text safe to emit after ``piece``, and whether a stop string was reached."""
        self._held += self._decoder.decode(piece)
        hits = [i for i in (self._held.find(s) for s in self._stop) if i >= 0]
        if hits:
            text, self._held = self._held[: min(hits)], ""
            return text, True
        keep = _partial_stop(self._held, self._stop)
        text, self._held = (
            self._held[: len(self._held) - keep],
            self._held[len(self._held) - keep :],
        )
        return text, False

    def flush(self) -> str:
        """What is held back at the end (a partial stop string that never completed)."""
        text, self._held = self._held + self._decoder.decode(b"", final=True), ""
        return text


def _partial_stop(text: str, stops: list[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


def token_piece(vocab: Any, token: int) -> bytes:
    """The bytes a token stands for (special tokens as empty: they end turns)."""
    buf = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
    return buf.raw[:n]


def new_sampler(vocab: Any, s: Sampling, *, constrained: bool = True) -> Any:
    """A fresh sampler chain for ``s`` (free it with ``llama_sampler_free``); without
    ``constrained``, its grammar is left out (a lazy grammar's free start)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    parts = []
    if (s.repeat_penalty, s.frequency_penalty, s.presence_penalty) != (1.0, 0.0, 0.0):
        parts.append(
            llama_cpp.llama_sampler_init_penalties(
                llama_cpp.llama_vocab_n_tokens(vocab),
                PENALTY_LAST_N,
                s.repeat_penalty,
                s.frequency_penalty,
                s.presence_penalty,
            )
        )
    if s.grammar is not None and constrained:
        grammar = llama_cpp.llama_sampler_init_grammar(
            vocab, s.grammar.encode("utf-8"), s.grammar_root.encode("utf-8")
        )
        if not grammar:
            llama_cpp.llama_sampler_free(chain)
            raise ModelError("llama.cpp rejected the grammar")
        parts.append(grammar)
    if s.temperature <= 0.0:
        parts.append(llama_cpp.llama_sampler_init_greedy())
    else:
        parts += [
            llama_cpp.llama_sampler_init_top_k(s.top_k),
            llama_cpp.llama_sampler_init_typical(s.typical_p, 1),
            llama_cpp.llama_sampler_init_top_p(s.top_p, 1),
            llama_cpp.llama_sampler_init_min_p(s.min_p, 1),
            llama_cpp.llama_sampler_init_temp(s.temperature),
            llama_cpp.llama_sampler_init_dist(s.seed & 0xFFFFFFFF),
        ]
    for part in parts:
        llama_cpp.llama_sampler_chain_add(chain, part)
    return chain
