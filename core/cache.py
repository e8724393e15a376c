"""Bounded in-process caches for state keyed by strangers (servers, channels, users).

``TTLCache``: async, single-flight loading for per-server reads on the hot path. When an
entry expires while many turns of a busy server need it, exactly one of them reloads it
and the others await that same load (no thundering herd on the database). Entries are per
process; other processes' changes show up within ``ttl`` seconds.

``LRUDict``: a plain mapping that forgets its least recently used keys past a size.

Nothing here may grow without bound: every key comes from someone who can make new ones
(a DM is a server of its own), so each cache has a size cap.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
DEFAULT_MAX_ENTRIES = 4096
"""How many keys a per-server cache keeps; the least recently used go first."""


class LRUDict(OrderedDict[K, V]):
    """A dict that keeps at most ``max_size`` keys, dropping the least recently used.

    ``get`` and item access count as use; setting an item makes it the newest.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_ENTRIES) -> None:
        super().__init__()
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.max_size = max_size

    def __getitem__(self, key: K) -> V:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    @overload  # type: ignore[override]
    def get(self, key: K, default: None = None) -> V | None: ...
    @overload
    def get(self, key: K, default: V) -> V: ...
    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of ``key`` (now the most recently used), or ``default``."""
        if key in self:
            return self[key]
        return default

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.max_size:
            self.popitem(last=False)


class TTLCache(Generic[K, V]):
    """Values loaded on demand, kept ``ttl`` seconds, invalidated explicitly on change.

    At most ``max_entries`` values are kept (least recently used go first); loads in
    flight are bounded by the callers waiting on them.
    """

    def __init__(
        self,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: LRUDict[K, tuple[float, V]] = LRUDict(max_entries)
        self._loading: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, or the result of one shared ``load()``."""
        entry = self._values.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) get it too
            raise
        else:
            future.set_result(value)
            if self._loading.get(key) is future:
                self._values[key] = (self._clock() + self._ttl, value)
            return value
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]

    def invalidate(self, key: K | None = None) -> None:
        """Forget ``key`` (or everything); a load in flight will not be stored."""
        if key is None:
            self._values.clear()
            self._loading.clear()
        else:
            self._values.pop(key, None)
            self._loading.pop(key, None)
