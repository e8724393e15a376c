"""Per-server settings the hot path reads on every turn, cached briefly in this process.

Storage is the source of truth; entries expire after ``ttl`` seconds so a change made by
another bot process shows up soon, and this process's own changes invalidate at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cache import TTLCache

if TYPE_CHECKING:
    from storage.repository import Storage


class ServerState:
    """Cached reads of per-server settings: the system prompt and chat channels."""

    def __init__(self, storage: Storage, *, ttl: float = 2.0) -> None:
        self._storage = storage
        self._prompts: TTLCache[int, str | None] = TTLCache(ttl)
        self._chat: TTLCache[tuple[str, str, str], bool] = TTLCache(ttl)

    async def is_chat_channel(self, platform: str, server_id: str, channel_id: str) -> bool:
        """Whether every message in the channel is answered (``/channel chat on``)."""
        key = (platform, server_id, channel_id)
        return await self._chat.get(key, lambda: self._storage.chat_channel_at(*key))

    async def set_chat_channel(self, channel_pk: int, enabled: bool) -> None:
        """Mark a channel as a chat channel (or not); takes effect here at once."""
        await self._storage.set_chat_channel(channel_pk, enabled)
        self._chat.invalidate(None)

    async def system_prompt(self, server_pk: int) -> str | None:
        """The server's own system prompt, or None for the configured default."""
        return await self._prompts.get(
            server_pk, lambda: self._storage.get_system_prompt(server_pk)
        )

    async def set_system_prompt(self, server_pk: int, prompt: str | None) -> None:
        """Store (or with None, reset) the server's system prompt."""
        await self._storage.set_system_prompt(server_pk, prompt)
        self._prompts.invalidate(server_pk)
