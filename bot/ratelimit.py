"""Token-bucket rate limits keyed by user or server (in-process).

Nothing here knows about events; the router asks ``take(key)`` and turns a positive
``retry_after`` into a "slow down" reply. Buckets live in this process: with several bot
processes each enforces its own share (a Redis-backed limiter can replace this class).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from core.cache import LRUDict
from core.events import Origin


class TokenBuckets:
    """Many token buckets of one shape: ``capacity`` tokens, refilled at ``rate`` per second."""

    def __init__(
        self,
        capacity: float,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        # Least recently used buckets go past ``max_keys``: a forgotten bucket is a full
        # one, which only errs towards letting a long-quiet sender through.
        self._buckets: LRUDict[Hashable, tuple[float, float]] = LRUDict(max_keys)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0 on success, else seconds until they would exist."""
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

    def refund(self, key: Hashable, cost: float = 1.0) -> None:
        """Give back tokens taken for work that was not done (e.g. another limit refused)."""
        if key in self._buckets:
            tokens, stamp = self._buckets[key]
            self._buckets[key] = (min(self.capacity, tokens + cost), stamp)


class Notices:
    """Who was told "slow down" until when: one notice per limited window, not per message."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: LRUDict[Hashable, float] = LRUDict(100_000)

    def first(self, origin: Origin, retry_after: float) -> bool:
        """True if ``origin``'s sender should be told now (not told in this window yet)."""
        key = (origin.platform, origin.server_id, origin.user_id)
        now = self._clock()
        if self._until.get(key, 0.0) > now:
            return False
        self._until[key] = now + retry_after
        return True

    def __len__(self) -> int:
        return len(self._until)
