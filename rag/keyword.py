"""Keyword retrieval beside the vectors: BM25 over each chat server's chunks.

Vectors find paraphrases but miss rare exact words (a name, an error code, a command);
BM25 finds those. :class:`KeywordIndex` is one immutable ``bm25s`` index over
``(id, text)`` pairs; :class:`KeywordIndexes` keeps one per chat server, built lazily
from the caller's loader off the event loop, rebuilt after :meth:`KeywordIndexes.invalidate`,
and at most ``max_servers`` of them in memory (least recently used go first).

Text is tokenised here, not by ``bm25s``: NFKC, case-folded, runs of letters and
digits (Unicode-aware; underscores and every other mark split words), each CJK
ideograph or kana on its own (those scripts put no spaces between words), Lucene's
English stop words dropped, and a light English plural stemmer (Harman's S-stemmer)
on ASCII words.

This module must never block the event loop with a build or a search, raise on any
text (empty, zero-width, right-to-left, emoji, a megabyte of one word), hold more
than ``max_servers`` indexes, or let a build started before an invalidation replace
what comes after it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import bm25s  # type: ignore[import-untyped]
import numpy as np
from bm25s.stopwords import STOPWORDS_EN  # type: ignore[import-untyped]

# bm25s sets its logger to DEBUG on import, so its per-build chatter would reach every
# handler; give the decision back to the application's logging configuration.
logging.getLogger("bm25s").setLevel(logging.NOTSET)

Loader = Callable[[int], Awaitable[Sequence[tuple[str, str]]]]

_WORD = re.compile(r"[^\W_]+")  # letters and digits; underscores split words too
_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_HAS_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_SPLIT = re.compile(f"[{_CJK_CHARS}]|[^{_CJK_CHARS}]+")  # each ideograph / kana alone
_STOPWORDS = frozenset(STOPWORDS_EN)
_NO_S_STRIP = ("us", "ss", "is")


def _stem(word: str) -> str:
    """Harman's S-stemmer: English plurals to singular; other words as they are."""
    if not word.isascii() or len(word) < 4 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith(_NO_S_STRIP):
        return word
    return word[:-1]


def tokenize(text: str) -> list[str]:
    """The terms of a text, as both the index and the queries see them.

    Args:
        text: Any text.

    Returns:
        Lower-case terms in order (repeats kept); ``[]`` for text without words.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    terms: list[str] = []
    for word in _WORD.findall(folded):
        pieces = _CJK_SPLIT.findall(word) if _HAS_CJK.search(word) else (word,)
        terms.extend(_stem(piece) for piece in pieces if piece not in _STOPWORDS)
    return terms


@dataclass(frozen=True)
class KeywordIndex:
    """An immutable BM25 index over one set of ``(id, text)`` pairs.

    Build it with :meth:`build`; the constructor is not for callers.
    """

    _ids: tuple[str, ...]
    _bm25: bm25s.BM25 | None  # None when no text has a term: every search is empty

    @classmethod
    def build(cls, items: Sequence[tuple[str, str]]) -> KeywordIndex:
        """Index texts by their terms (CPU-bound: call it in a worker thread).

        Args:
            items: ``(id, text)`` pairs; ids should be unique (a repeated id is
                indexed twice and may be returned twice).

        Returns:
            The index; searching an empty one returns ``[]``.
        """
        ids = tuple(item_id for item_id, _ in items)
        corpus = [tokenize(text) for _, text in items]
        if not any(corpus):
            return cls(ids, None)
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        return cls(ids, bm25)

    def __len__(self) -> int:
        """The number of indexed texts."""
        return len(self._ids)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best matches of a query (CPU-bound: call it in a worker thread).

        Args:
            query: Any text; its stop words and unknown terms are ignored.
            k: At most this many results.

        Returns:
            ``(id, score)`` pairs with scores above zero, best first; ties in
            indexing order. ``[]`` for an empty index or a query without known terms.
        """
        if self._bm25 is None or k <= 0:
            return []
        vocab = self._bm25.vocab_dict
        term_ids = sorted({vocab[term] for term in tokenize(query) if term in vocab})
        if not term_ids:
            return []
        scores = np.asarray(self._bm25.get_scores_from_ids(term_ids), dtype=np.float64)
        return self._top(scores, k)

    def _top(self, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The best ``k`` positive scores as ``(id, score)``, ties by position."""
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:  # keep every hit tied with the k-th, so ties cut by position
            kth = np.partition(scores[hits], len(hits) - k)[len(hits) - k]
            hits = hits[scores[hits] >= kth]
        hits = hits[np.lexsort((hits, -scores[hits]))][:k]
        return [(self._ids[i], float(scores[i])) for i in hits]


@dataclass
class _Build:
    """One build of one server's index, shared by every search that waits for it."""

    version: int
    task: asyncio.Task[KeywordIndex]


class KeywordIndexes:
    """One :class:`KeywordIndex` per chat server, built on demand and kept in an LRU.

    Args:
        load: Returns a server's ``(id, text)`` pairs (awaited on the event loop).
        max_servers: Keep at most this many servers' indexes in memory.
    """

    def __init__(self, load: Loader, max_servers: int = 64) -> None:
        if max_servers < 1:
            raise ValueError(f"max_servers must be at least 1, got {max_servers}")
        self._load = load
        self._max_servers = max_servers
        self._indexes: OrderedDict[int, KeywordIndex] = OrderedDict()
        self._builds: dict[int, _Build] = {}  # only while a build runs
        self._version = 0  # counts builds started; a newer build wins

    def __len__(self) -> int:
        """The number of servers whose index is in memory."""
        return len(self._indexes)

    async def search(self, server: int, query: str, k: int) -> list[tuple[str, float]]:
        """Search one server's texts, building its index first if needed.

        Args:
            server: The chat server's key.
            query: Any text.
            k: At most this many results.

        Returns:
            ``(id, score)`` pairs, best first (see :meth:`KeywordIndex.search`).
        """
        index = await self._index(server)
        return await asyncio.to_thread(index.search, query, k)

    def invalidate(self, server: int) -> None:
        """Forget a server's index: its texts changed; the next search rebuilds it.

        A build already under way keeps serving the searches that wait for it, but its
        result is not kept.
        """
        self._indexes.pop(server, None)
        self._builds.pop(server, None)

    async def _index(self, server: int) -> KeywordIndex:
        """The server's index: cached, being built, or built now."""
        index = self._indexes.get(server)
        if index is not None:
            self._indexes.move_to_end(server)
            return index
        build = self._builds.get(server)
        if build is None:
            build = self._start(server)
        # shield: one cancelled search must not cancel the build the others wait for.
        return await asyncio.shield(build.task)

    def _start(self, server: int) -> _Build:
        """Start building a server's index in the background."""
        self._version += 1
        build = _Build(self._version, asyncio.create_task(self._build(server)))
        self._builds[server] = build
        build.task.add_done_callback(lambda task: self._finish(server, build, task))
        return build

    async def _build(self, server: int) -> KeywordIndex:
        items = await self._load(server)
        return await asyncio.to_thread(KeywordIndex.build, items)

    def _finish(self, server: int, build: _Build, task: asyncio.Task[KeywordIndex]) -> None:
        """Keep a finished build's index, unless it was invalidated meanwhile."""
        failed = task.cancelled() or task.exception() is not None  # marks it retrieved
        current = self._builds.get(server)
        if current is None or current.version != build.version:
            return  # invalidated, or superseded by a newer build
        del self._builds[server]
        if failed:
            return  # its waiters saw the error; the next search tries again
        self._indexes[server] = task.result()
        self._indexes.move_to_end(server)
        while len(self._indexes) > self._max_servers:
            self._indexes.popitem(last=False)
