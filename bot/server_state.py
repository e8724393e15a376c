"""Per-server settings the hot path reads on every turn, cached briefly in this process.

Storage is the source of truth; entries expire after ``ttl`` seconds so a change made by
another bot process shows up soon, and this process's own changes invalidate at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.repository import Storage


class ServerState:
    """Cached reads of per-server settings (currently the system prompt)."""

    def __init__(self, storage: Storage, *, ttl: float = 2.0) -> None:
        self._storage = storage
        self._ttl = ttl
        self._prompts: dict[int, tuple[float, str | None]] = {}

    async def system_prompt(self, server_pk: int) -> str | None:
        """The server's own system prompt, or None for the configured default."""
        now = time.monotonic()
        cached = self._prompts.get(server_pk)
        if cached is not None and cached[0] > now:
            return cached[1]
        prompt = await self._storage.get_system_prompt(server_pk)
        self._prompts[server_pk] = (now + self._ttl, prompt)
        return prompt

    async def set_system_prompt(self, server_pk: int, prompt: str | None) -> None:
        """Store (or with None, reset) the server's system prompt."""
        await self._storage.set_system_prompt(server_pk, prompt)
        self._prompts.pop(server_pk, None)
