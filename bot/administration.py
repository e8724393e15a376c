"""The app's side of the administration port (``core.admin.Administration``).

Built over the plugin manager, the cached server state and storage; handed only to
required plugins (the ``admin`` plugin), so no other plugin reaches any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.admin import CommandInfo, PluginStatus

if TYPE_CHECKING:
    from agents.config import AgentSettings
    from bot.plugins import PluginManager
    from bot.server_state import ServerState
    from core.caller import Caller
    from core.plugin import Command
    from storage.repository import Storage


class BotAdministration:
    """Per-server administration over this process's plugins and storage."""

    def __init__(
        self,
        plugins: PluginManager,
        server_state: ServerState,
        storage: Storage,
        agent: AgentSettings,
    ) -> None:
        self._plugins = plugins
        self._state = server_state
        self._storage = storage
        self._agent = agent

    async def plugins(self, server_pk: int) -> list[PluginStatus]:
        """Every loaded plugin, in name order, with whether it is on in this server."""
        chosen = await self._plugins.set_here(server_pk)
        enabled = {item.plugin.name for item in await self._plugins.enabled_for(server_pk)}
        found = []
        for name in sorted(self._plugins.loaded):
            meta = self._plugins.loaded[name].plugin
            why: Any = "required" if meta.required else "set here" if name in chosen else "default"
            found.append(PluginStatus(name, meta.version, meta.description, name in enabled, why))
        return found

    async def set_enabled(self, server_pk: int, name: str, enabled: bool) -> None:
        """Turn plugin ``name`` on or off in this server."""
        await self._plugins.set_enabled(server_pk, name, enabled)

    async def plugin_config(self, caller: Caller, name: str) -> dict[str, Any] | None:
        """Plugin ``name``'s settings where ``caller`` is (None when it has none)."""
        meta = self._plugins.require(name).plugin
        config = await self._plugins.config_for(
            meta, caller.server_pk, caller.channel_pk, caller.user_pk
        )
        return None if config is None else config.model_dump(mode="json")

    async def set_plugin_config(
        self, caller: Caller, name: str, key: str, value: str, *, as_user: bool = False
    ) -> tuple[Any, str]:
        """Set one scoped setting (see ``PluginManager.set_config``)."""
        return await self._plugins.set_config(caller, name, key, value, as_user=as_user)

    async def commands(self, server_pk: int) -> list[CommandInfo]:
        """The commands of the plugins enabled in this server."""
        found = [
            _info(name, cmd)
            for loaded in await self._plugins.enabled_for(server_pk)
            for name, cmd in loaded.plugin.commands.items()
        ]
        return sorted(found, key=lambda info: info.name)

    async def system_prompt(self, server_pk: int) -> str | None:
        """The server's own system prompt, or None for the default."""
        return await self._state.system_prompt(server_pk)

    def default_system_prompt(self) -> str:
        """The configured default system prompt."""
        return self._agent.system_prompt

    async def set_system_prompt(self, server_pk: int, prompt: str | None) -> None:
        """Store (None: drop) the server's own system prompt."""
        await self._state.set_system_prompt(server_pk, prompt)

    async def set_chat_channel(self, channel_pk: int, enabled: bool) -> None:
        """Mark a channel as answered on every message (or not)."""
        await self._state.set_chat_channel(channel_pk, enabled)

    async def clear_conversation(self, conversation_pk: int) -> int:
        """Forget a conversation's stored messages."""
        return await self._storage.clear_conversation(conversation_pk)


def _info(name: str, cmd: Command) -> CommandInfo:
    subs = tuple(_info(sub.name, sub) for sub in cmd.subcommands.values())
    return CommandInfo(name, cmd.description, cmd.admin_only, subs)
