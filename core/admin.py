"""The administration port: what the required core plugin (``admin``) may change.

Only plugins declared ``required=True`` receive it (``PluginContext.admin``); an ordinary
plugin cannot enable plugins, change prompts or read other plugins' settings. The app
implements it (``bot.administration``); the router has already checked that the caller
is an admin and written the audit log before a handler runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from core.caller import Caller


@dataclass(frozen=True, slots=True)
class PluginStatus:
    """One loaded plugin as a server sees it."""

    name: str
    version: str
    description: str
    enabled: bool
    why: Literal["required", "set here", "default"]


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """A command (or subcommand) as /help lists it."""

    name: str
    description: str
    admin_only: bool = False
    subcommands: tuple[CommandInfo, ...] = ()


class Administration(Protocol):
    """Per-server administration, implemented by the app."""

    async def plugins(self, server_pk: int) -> list[PluginStatus]:
        """Every loaded plugin, in name order, with whether it is on in this server."""
        ...

    async def set_enabled(self, server_pk: int, name: str, enabled: bool) -> None:
        """Turn plugin ``name`` on or off in this server (CommandError if unknown/required)."""
        ...

    async def plugin_config(self, caller: Caller, name: str) -> dict[str, Any] | None:
        """Plugin ``name``'s settings where ``caller`` is (None: it has none)."""
        ...

    async def set_plugin_config(
        self, caller: Caller, name: str, key: str, value: str, *, as_user: bool = False
    ) -> tuple[Any, str]:
        """Set one of plugin ``name``'s scoped settings: in the caller's server or channel
        (the field's scope decides), or with ``as_user`` the caller's own. Returns the
        stored value and the scope ("server", "channel" or "user")."""
        ...

    async def commands(self, server_pk: int) -> list[CommandInfo]:
        """The commands of the plugins enabled in this server, in name order."""
        ...

    async def system_prompt(self, server_pk: int) -> str | None:
        """The server's own system prompt, or None where it uses the default."""
        ...

    def default_system_prompt(self) -> str:
        """The configured default system prompt."""
        ...

    async def set_system_prompt(self, server_pk: int, prompt: str | None) -> None:
        """Store (None: drop) the server's own system prompt."""
        ...

    async def set_chat_channel(self, channel_pk: int, enabled: bool) -> None:
        """Mark a channel as one where every message is answered (or not)."""
        ...

    async def clear_conversation(self, conversation_pk: int) -> int:
        """Forget a conversation's stored messages; returns how many were removed."""
        ...
