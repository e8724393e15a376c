"""Several llama.cpp servers behind one chat model: least-loaded choice, passive health.

``ServerPool`` knows each server's requests in flight and its recent failures. A request
goes to the healthy server with the fewest in flight (the least recently chosen on a
tie). A server that refused a connection or answered 5xx is left out for a backoff that
doubles with each failure in a row (``backoff_s`` .. ``max_backoff_s``); when its time is
up, the next request tries it again (one success clears it). When every server is out,
the one that comes back first is tried, so the bot never waits on a dead list.

Event-loop code only (not thread-safe). Nothing here does I/O: the caller reports what
happened with ``begin``/``end``/``failed``/``succeeded``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class ServerState:
    """One server as the pool sees it."""

    url: str
    in_flight: int = 0
    failures: int = 0
    down_until: float = 0.0
    last_chosen: float = 0.0
    served: int = 0
    last_error: str = ""


class ServerPool:
    """Choose among ``urls`` (see the module docstring)."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._servers = {url: ServerState(url) for url in urls}
        if not self._servers:
            raise ValueError("a server pool needs at least one URL")
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._servers)

    @property
    def urls(self) -> list[str]:
        """The servers, in configured order."""
        return list(self._servers)

    def pick(self, exclude: Iterable[str] = ()) -> str | None:
        """The server for the next request (None when every one is excluded)."""
        skip = set(exclude)
        candidates = [s for s in self._servers.values() if s.url not in skip]
        if not candidates:
            return None
        now = self._clock()
        healthy = [s for s in candidates if s.down_until <= now]
        if healthy:
            chosen = min(healthy, key=lambda s: (s.in_flight, s.last_chosen))
        else:
            chosen = min(candidates, key=lambda s: s.down_until)
        chosen.last_chosen = now
        return chosen.url

    def begin(self, url: str) -> None:
        """A request to ``url`` starts."""
        self._servers[url].in_flight += 1

    def end(self, url: str) -> None:
        """A request to ``url`` is over (whatever happened)."""
        state = self._servers[url]
        state.in_flight = max(0, state.in_flight - 1)

    def failed(self, url: str, error: str) -> None:
        """``url`` could not serve: leave it out for a while."""
        state = self._servers[url]
        state.failures += 1
        state.last_error = error
        delay = min(self._max_backoff_s, self._backoff_s * 2 ** (state.failures - 1))
        state.down_until = self._clock() + delay

    def succeeded(self, url: str) -> None:
        """``url`` answered: it is healthy again."""
        state = self._servers[url]
        state.failures, state.down_until, state.last_error = 0, 0.0, ""
        state.served += 1

    def states(self) -> list[ServerState]:
        """A snapshot of every server (for status lines and tests)."""
        return [ServerState(**vars(s)) for s in self._servers.values()]


def split_urls(value: str) -> list[str]:
    """The URLs in ``[llm] base_url``: one, or several separated by commas or spaces."""
    return [part for part in value.replace(",", " ").split() if part]
