"""Command menus for adapters: each server's commands and their change events, keyed by
the platform's own server ids.

Adapters only translate these platform-neutral specs (Discord application commands,
Telegram command menus); which commands a server has is decided here, from the plugins
enabled there. A change (a plugin toggled in one server, or any load/unload) reaches the
subscribers of that server's platform as ``listener(server_id)`` (``None``: every server).
Listeners run inside the admin's command: they must only schedule their work (Discord
debounces its syncs), never do it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.plugins import Loaded, PluginManager
    from core.plugin import Command
    from storage.repository import Storage

log = logging.getLogger(__name__)
Listener = Callable[[str | None], Awaitable[None]]


class CommandMenus:
    """Which commands each server has, and who to tell when that changes."""

    def __init__(self, plugins: PluginManager, storage: Storage) -> None:
        self._plugins = plugins
        self._storage = storage
        self._listeners: dict[str, list[Listener]] = {}
        plugins.add_listener(self._changed)

    async def commands_for(self, platform: str, server_id: str, name: str = "") -> list[Command]:
        """The commands of the plugins enabled in that server, sorted by name."""
        server_pk = await self._storage.server_key(platform, server_id, name)
        return _commands(await self._plugins.enabled_for(server_pk))

    def default_commands(self) -> list[Command]:
        """The commands of the plugins on by default (a platform's menu for new chats)."""
        loaded = self._plugins.loaded.values()
        return _commands([item for item in loaded if self._plugins.default_enabled(item.plugin)])

    def subscribe(self, platform: str, listener: Listener) -> None:
        """Call ``listener(server_id)`` when a server of ``platform`` changes its commands."""
        self._listeners.setdefault(platform, []).append(listener)

    def unsubscribe(self, platform: str, listener: Listener) -> None:
        """Stop telling ``listener`` (an adapter that closed)."""
        if listener in self._listeners.get(platform, []):
            self._listeners[platform].remove(listener)

    async def _changed(self, server_pk: int | None) -> None:
        targets: list[tuple[Listener, str | None]]
        if server_pk is None:
            targets = [(listener, None) for group in self._listeners.values() for listener in group]
        else:
            ref = await self._storage.server_ref(server_pk)
            if ref is None:
                return
            platform, changed = ref
            targets = [(listener, changed) for listener in self._listeners.get(platform, [])]
        for listener, server_id in targets:
            try:
                await listener(server_id)
            except Exception:
                log.exception("command menu listener failed")


def _commands(plugins: list[Loaded]) -> list[Command]:
    """The commands of ``plugins``, sorted by name."""
    return sorted(
        (cmd for item in plugins for cmd in item.plugin.commands.values()),
        key=lambda cmd: cmd.name,
    )
