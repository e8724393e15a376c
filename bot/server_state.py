"""The core's own scoped settings: a server's system prompt and a channel's chat flag.

Stored through the scoped-settings driver under the namespace ``core``; the chat flag is
also looked up by the platform's ids (every message nobody addressed to the bot asks),
cached briefly and dropped when any channel's flag changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.cache import TTLCache

if TYPE_CHECKING:
    from bot.scoped import ScopedSettings
    from storage.settings import Scope, SettingStore

CORE = "core"


class ServerState:
    """The system prompt per server and chat channels, through the settings driver."""

    def __init__(self, settings: ScopedSettings, store: SettingStore, *, ttl: float = 2.0) -> None:
        self._settings = settings
        self._store = store
        self._chat: TTLCache[tuple[str, str, str], bool] = TTLCache(ttl)
        settings.add_listener(self._changed)

    async def system_prompt(self, server_pk: int) -> str | None:
        """The server's own system prompt, or None for the configured default."""
        prompt = await self._settings.get("server", server_pk, CORE, "system_prompt")
        return prompt if isinstance(prompt, str) else None

    async def set_system_prompt(self, server_pk: int, prompt: str | None) -> None:
        """Store (or with None, reset) the server's system prompt."""
        await self._settings.set("server", server_pk, CORE, "system_prompt", prompt)

    async def is_chat_channel(self, platform: str, server_id: str, channel_id: str) -> bool:
        """Whether every message in the channel is answered (``/channel chat on``)."""
        key = (platform, server_id, channel_id)
        return await self._chat.get(key, lambda: self._store.chat_channel_at(*key))

    async def set_chat_channel(self, channel_pk: int, enabled: bool) -> None:
        """Mark a channel as a chat channel (or not); takes effect here at once."""
        await self._settings.set("channel", channel_pk, CORE, "chat", True if enabled else None)

    async def _changed(self, scope: Scope, target: int, namespace: str, key: str) -> None:
        if (namespace, key) == (CORE, "chat"):
            self.forget_chat_flags()

    def forget_chat_flags(self) -> None:
        """Drop every cached chat-channel flag (a flag changed, or a server was renamed)."""
        self._chat.invalidate(None)

    def __len__(self) -> int:
        return len(self._chat)
