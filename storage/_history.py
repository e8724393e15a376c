"""A per-process cache of the newest messages of recent conversations (private to storage).

Why it exists: reading history is the one database round trip left on the per-message
path once identities are cached, and on SQLite it caps throughput near 1,000 turns/s.

Why it is correct: only this process's own writes change what it caches, and every read
that fills it and every write that touches it run under the conversation's lock, so a fill
can never race a write. A tail that may lack older messages answers only requests it
fully covers. It assumes one conversation is served by one process at a time (Discord
shards own whole guilds); a process that must see other processes' writes to the same
conversation opens ``Storage`` with ``cache_history=False``.

It must never hold more than ``max_chars`` characters of message content, and never
answer from a tail it is not sure is current.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Generic, Protocol, TypeVar
from weakref import WeakValueDictionary

DEFAULT_MAX_CHARS = 32_000_000
DEFAULT_MAX_CONVERSATIONS = 4096
"""Conversations kept at once, however short (each DM user opens one)."""
MIN_DEPTH = 64
"""A miss loads at least this many messages, so later, longer requests still hit."""


class _Message(Protocol):
    @property
    def content(self) -> str: ...


M = TypeVar("M", bound=_Message)


@dataclass(slots=True)
class _Tail(Generic[M]):
    messages: deque[M]
    complete: bool  # True: these are all the conversation's messages, not just the newest
    chars: int


class HistoryCache(Generic[M]):
    """Newest messages per conversation, LRU-bounded by total characters and by count."""

    def __init__(
        self,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
    ) -> None:
        self._max_chars = max_chars
        self._max_conversations = max_conversations
        self._tails: OrderedDict[int, _Tail[M]] = OrderedDict()
        self._chars = 0
        self._locks: WeakValueDictionary[int, asyncio.Lock] = WeakValueDictionary()

    def lock(self, conversation_pk: int) -> asyncio.Lock:
        """The lock that fills and writes of this conversation hold (exists while used)."""
        lock = self._locks.get(conversation_pk)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_pk] = lock
        return lock

    def get(self, conversation_pk: int, limit: int) -> list[M] | None:
        """The last ``limit`` messages, oldest first, or None if not known for sure."""
        tail = self._tails.get(conversation_pk)
        if tail is None or (len(tail.messages) < limit and not tail.complete):
            return None
        self._tails.move_to_end(conversation_pk)
        skip = max(0, len(tail.messages) - limit)
        return list(islice(tail.messages, skip, None))

    def load_size(self, limit: int) -> int:
        """How many messages to read on a miss for a request of ``limit``."""
        return max(limit, MIN_DEPTH)

    def fill(self, conversation_pk: int, messages: list[M], load_size: int) -> None:
        """Remember the newest messages just read (``load_size`` were asked for)."""
        self.drop(conversation_pk)
        chars = sum(len(m.content) for m in messages)
        if self._max_chars <= 0 or chars > self._max_chars:
            return
        complete = len(messages) < load_size
        tail = _Tail(deque(messages, maxlen=max(load_size, 1)), complete, chars)
        self._tails[conversation_pk] = tail
        self._chars += chars
        self._evict()

    def extend(self, conversation_pk: int, messages: Iterable[M]) -> None:
        """Add messages just committed to the conversation (if it is cached)."""
        tail = self._tails.get(conversation_pk)
        if tail is None:
            return
        for message in messages:
            if len(tail.messages) == tail.messages.maxlen:
                dropped = tail.messages.popleft()
                tail.chars -= len(dropped.content)
                self._chars -= len(dropped.content)
                tail.complete = False
            tail.messages.append(message)
            tail.chars += len(message.content)
            self._chars += len(message.content)
        self._tails.move_to_end(conversation_pk)
        self._evict()

    def drop(self, conversation_pk: int) -> None:
        """Forget the conversation (its stored state is unknown or changed)."""
        tail = self._tails.pop(conversation_pk, None)
        if tail is not None:
            self._chars -= tail.chars

    def __len__(self) -> int:
        return len(self._tails)

    def _evict(self) -> None:
        while self._tails and (
            self._chars > self._max_chars or len(self._tails) > self._max_conversations
        ):
            _, tail = self._tails.popitem(last=False)
            self._chars -= tail.chars
