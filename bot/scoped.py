"""The scoped-settings driver: one cache and one change event for every stored setting.

Values that servers, channels and users set live in storage (``storage.settings``) as
``(scope, target, namespace, key) → value``; defaults live in code (the core's, and each
plugin's config model). This driver is the only reader and writer: reads are cached
briefly per scope and target (another bot process's change shows up within ``ttl``;
this process's own at once), and every write tells the listeners. A value read again in
the second half of its ``ttl`` is reloaded in the background, so a busy server's turns
never wait for that reload.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from core.cache import TTLCache

if TYPE_CHECKING:
    from storage.settings import Scope, SettingStore

log = logging.getLogger(__name__)
Listener = Callable[["Scope", int, str, str], Awaitable[None]]


class ScopedSettings:
    """Cached reads and evented writes of stored settings."""

    def __init__(self, store: SettingStore, *, ttl: float = 2.0) -> None:
        self._store = store
        self._cache: TTLCache[tuple[Scope, int], Mapping[tuple[str, str], Any]] = TTLCache(
            ttl, refresh_after=ttl / 2
        )
        self._listeners: list[Listener] = []

    async def values(self, scope: Scope, target: int) -> Mapping[tuple[str, str], Any]:
        """Every stored value of one scope and target, by ``(namespace, key)``."""
        return await self._cache.get((scope, target), lambda: self._store.values(scope, target))

    async def get(self, scope: Scope, target: int, namespace: str, key: str) -> Any:
        """One stored value, or None where the default applies."""
        return (await self.values(scope, target)).get((namespace, key))

    async def set(self, scope: Scope, target: int, namespace: str, key: str, value: Any) -> None:
        """Store ``value`` (None: back to the default); the listeners hear of it."""
        await self._store.set(scope, target, namespace, key, value)
        self._cache.invalidate((scope, target))
        for listener in list(self._listeners):
            try:
                await listener(scope, target, namespace, key)
            except Exception:
                log.exception("settings listener failed")

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(scope, target, namespace, key)`` after every change here."""
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._cache)
