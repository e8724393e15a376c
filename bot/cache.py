"""A tiny async TTL cache with single-flight loading, for per-server reads on the hot path.

When an entry expires while many turns of a busy server need it, exactly one of them
reloads it and the others await that same load (no thundering herd on the database).
Entries are per process; other processes' changes show up within ``ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Values loaded on demand, kept ``ttl`` seconds, invalidated explicitly on change."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

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
