"""Bounded in-process caches for state keyed by strangers (servers, channels, users).

``TTLCache``: async, single-flight loading for per-server reads on the hot path. When an
entry expires while many turns of a busy server need it, exactly one of them reloads it
and the others await that same load (no thundering herd on the database). With
``refresh_after``, an entry read after that age is still served while one background load
replaces it, so a key read steadily never makes a turn wait for the database. Entries are
per process; other processes' changes show up within ``ttl`` seconds (a value is never
served past its ``ttl``).

``LRUDict``: a plain mapping that forgets its least recently used keys past a size.

Nothing here may grow without bound: every key comes from someone who can make new ones
(a DM is a server of its own), so each cache has a size cap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, overload

log = logging.getLogger(__name__)
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

    ``refresh_after`` (seconds, below ``ttl``): a read of an older entry returns it and
    starts one background reload (a failed one is logged; the entry then expires as usual).
    At most ``max_entries`` values are kept (least recently used go first); loads in
    flight are bounded by the callers waiting on them and by the keys being refreshed.
    """

    def __init__(
        self,
        ttl: float,
        *,
        refresh_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if refresh_after is not None and not 0 <= refresh_after < ttl:
            raise ValueError(f"refresh_after must be in [0, ttl), got {refresh_after}")
        self._ttl = ttl
        self._refresh_after = refresh_after
        self._clock = clock
        self._values: LRUDict[K, tuple[float, V]] = LRUDict(max_entries)  # (loaded at, value)
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._refreshing: set[asyncio.Task[V]] = set()  # strong refs until they finish

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, or the result of one shared ``load()``."""
        entry = self._values.get(key)
        if entry is not None:
            age = self._clock() - entry[0]
            if age < self._ttl:
                if self._refresh_after is not None and age >= self._refresh_after:
                    self._refresh(key, load)
                return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        return await self._load(key, future, load)

    def invalidate(self, key: K | None = None) -> None:
        """Forget ``key`` (or everything); a load in flight will not be stored."""
        if key is None:
            self._values.clear()
            self._loading.clear()
        else:
            self._values.pop(key, None)
            self._loading.pop(key, None)

    def _refresh(self, key: K, load: Callable[[], Awaitable[V]]) -> None:
        """Start one background reload of ``key`` unless one is already running."""
        if key in self._loading:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        self._loading[key] = future  # readers after expiry share it; invalidate drops it
        task = loop.create_task(self._load(key, future, load))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[V]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background refresh failed", exc_info=task.exception())

    async def _load(self, key: K, future: asyncio.Future[V], load: Callable[[], Awaitable[V]]) -> V:
        """Run ``load()`` for ``future`` (registered in ``_loading``); store its value
        unless ``key`` was invalidated meanwhile."""
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) get it too
            raise
        else:
            future.set_result(value)
            if self._loading.get(key) is future:
                self._values[key] = (self._clock(), value)
            return value
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
