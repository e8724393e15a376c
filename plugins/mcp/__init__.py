"""Built-in ``mcp`` plugin: tools from Model Context Protocol servers.

The operator lists the MCP servers that exist (``[plugins.config.mcp.servers.NAME]``: a
command started over stdio, or a streamable-HTTP URL); a server's admins choose which of
them their server uses (``/mcp enable NAME``) and may turn single tools off (``/mcp tools
NAME deny TOOL``). The agent in a server is offered exactly the tools of the MCP servers
enabled there, named ``NAME_TOOL``, with the schemas the MCP server gives.

Each configured MCP server has one connection shared by all chat servers, opened on first
use, reconnected with backoff when it breaks, closed when the plugin unloads
(``plugins.mcp.connection``). A server that is down, slow, crashes mid-call or answers
garbage gives the model a one-line tool error, and ``/mcp list`` says what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.cache import LRUDict
from core.errors import InputRejected, PermissionDenied, PluginError
from core.events import quoted
from core.plugin import (
    CommandContext,
    Option,
    Plugin,
    PluginContext,
    SourcedTool,
    ToolContext,
    ToolResult,
)
from plugins.mcp import tables
from plugins.mcp.config import McpSettings
from plugins.mcp.connection import McpConnection, RemoteTool
from plugins.mcp.results import Limits, converted
from plugins.mcp.store import Choice, Choices

plugin = Plugin(
    "mcp",
    "Tools from MCP servers the operator configured, chosen per server by its admins",
    version="1.0.0",
    config_model=McpSettings,
    uses=("database",),
    migrations="migrations",
    tables=tables.metadata,
    # The slowest server's call, after waiting for its connection.
    call_timeout_s=lambda config: (
        max((s.timeout_s for s in config.servers.values()), default=30.0)
        + config.connect_timeout_s
        + 5.0
    ),
)

FIRST_WAIT_S = 3.0  # a turn waits this long for a connection it starts
MAX_LISTED_TOOLS = 40
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(slots=True)
class _State:
    """This load's connections, choices store, limits and image folder."""

    connections: dict[str, McpConnection] = field(default_factory=dict)
    choices: Choices | None = None
    limits: Limits = field(default_factory=Limits)
    images: Path | None = None
    # (MCP server, its tool name) -> the tool as last described and the SourcedTool for it
    # (bounded: a server may rename its tools as often as it likes).
    sourced: LRUDict[tuple[str, str], tuple[RemoteTool, SourcedTool]] = field(
        default_factory=lambda: LRUDict(4096)
    )


_state = _State()


@plugin.on_setup
async def _setup(ctx: PluginContext) -> None:
    """Prepare one (unopened) connection per configured MCP server."""
    settings = _settings(ctx.config)
    _state.choices = Choices(ctx.require("database", AsyncEngine))
    _state.limits = Limits(
        settings.result_chars, settings.max_images, int(settings.image_mb * 1024 * 1024)
    )
    _state.images = ctx.data_dir / "mcp"
    _state.connections = {
        name: McpConnection(
            name,
            server,
            connect_timeout_s=settings.connect_timeout_s,
            max_tools=settings.max_tools,
        )
        for name, server in settings.servers.items()
    }
    _state.sourced.clear()


@plugin.on_teardown
async def _teardown(ctx: PluginContext) -> None:
    """Close every connection (stdio servers' processes end with them)."""
    for connection in _state.connections.values():
        await connection.close()
    _state.connections = {}


def _settings(config: object) -> McpSettings:
    if not isinstance(config, McpSettings):
        raise PluginError("mcp", "started without its config")
    return config


def _store() -> Choices:
    if _state.choices is None:
        raise PluginError("mcp", "not set up")
    return _state.choices


# ---- the agent's tools ------------------------------------------------------------------


@plugin.tool_source
async def mcp_tools(ctx: ToolContext) -> list[SourcedTool]:
    """The tools of the MCP servers enabled in the caller's server, less those denied."""
    if not _state.connections:
        return []
    tools: list[SourcedTool] = []
    for name, choice in sorted((await _store().of(ctx.server_pk)).items()):
        connection = _state.connections.get(name)
        if connection is None or not choice.enabled:
            continue
        if connection.state == "idle":
            await connection.ready(FIRST_WAIT_S)  # first use: open it, wait a little
        for remote in connection.tools.values():
            if remote.name not in choice.denied:
                tools.append(_sourced(name, remote))
    return tools


def _sourced(server: str, remote: RemoteTool) -> SourcedTool:
    """The core's view of ``remote`` (the same object while the tool is unchanged)."""
    key = (server, remote.name)
    known = _state.sourced.get(key)
    if known is not None and known[0] is remote:
        return known[1]

    async def call(arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        choice = (await _store().of(ctx.server_pk)).get(server, Choice())
        if not choice.enabled or remote.name in choice.denied:  # a call for a tool not offered
            raise PermissionDenied(f"{server}/{remote.name} is not enabled in this server.")
        connection = _state.connections.get(server)
        if connection is None:
            raise PermissionDenied(f"the MCP server {server} is no longer configured")
        message = await connection.call(remote.name, arguments)
        return converted(message, f"{server}/{remote.name}", _state.images, _state.limits)

    tool = SourcedTool(
        name=_UNSAFE.sub("_", f"{server}_{remote.name}")[:64],
        description=remote.description.strip()[:1024] or f"{remote.name} (MCP server {server})",
        parameters=remote.parameters,
        call=call,
    )
    _state.sourced[key] = (remote, tool)
    return tool


# ---- commands ---------------------------------------------------------------------------


def _connection(name: str) -> McpConnection:
    """The configured MCP server ``name``; anything else is refused with the list."""
    found = _state.connections.get(name.strip().lower())
    if found is not None:
        return found
    names = ", ".join(sorted(_state.connections))
    known = (
        f"configured: {names}."
        if names
        else "none are configured (the operator lists them in [plugins.config.mcp.servers])."
    )
    raise InputRejected(f"There is no MCP server named {quoted(name, 24)}; {known}")


def _tool_names(connection: McpConnection, denied: frozenset[str]) -> str:
    names = sorted(connection.tools)
    if not names:
        return "no tools known yet"
    shown = [name + (" (off)" if name in denied else "") for name in names[:MAX_LISTED_TOOLS]]
    more = f" and {len(names) - MAX_LISTED_TOOLS} more" if len(names) > MAX_LISTED_TOOLS else ""
    return "tools: " + ", ".join(quoted(s, 48) for s in shown) + more


plugin.group("mcp", "Tools from MCP servers: list them, turn them on or off here")


@plugin.command("mcp list", "The MCP servers this bot may use, and which are on here")
async def list_command(ctx: CommandContext) -> str:
    """One entry per configured MCP server: on or off here, its connection (why it is
    down only for admins: errors may name hosts), its tools."""
    if not _state.connections:
        return (
            "No MCP servers are configured (the operator lists them in "
            "[plugins.config.mcp.servers])."
        )
    choices = await _store().of(ctx.server_pk)
    lines = []
    for name, connection in sorted(_state.connections.items()):
        choice = choices.get(name, Choice())
        if choice.enabled and connection.state == "idle":
            await connection.ready(FIRST_WAIT_S)
        about = (
            f" — {quoted(connection.server.description, 100)}"
            if connection.server.description
            else ""
        )
        here = "on here" if choice.enabled else "off here"
        lines.append(
            f"• {name} ({connection.server.transport}){about}: {here}; "
            f"{connection.status(reason=ctx.caller.is_admin)}; "
            f"{_tool_names(connection, choice.denied)}"
        )
    return "\n".join(lines)


_NAME = Option("name", description="The MCP server's name (see /mcp list)", max_length=24)


async def _choose(ctx: CommandContext, name: str, enabled: bool) -> tuple[McpConnection, Choice]:
    """Store the server's on/off choice for ``name`` (its denied tools kept)."""
    connection = _connection(name)
    choices = _store()
    old = (await choices.of(ctx.server_pk)).get(connection.name, Choice())
    await choices.set(ctx.server_pk, connection.name, Choice(enabled, old.denied))
    return connection, old


@plugin.command("mcp enable", "Offer an MCP server's tools in this server", _NAME, admin_only=True)
async def enable_command(ctx: CommandContext, name: str) -> str:
    """Turn the server on here and open its connection (waiting a little for it)."""
    connection, old = await _choose(ctx, name, True)
    if await connection.ready(connection.connect_timeout_s):
        return (
            f"MCP server {connection.name} is now on in this server; "
            f"{_tool_names(connection, old.denied)}."
        )
    return (
        f"MCP server {connection.name} is now on in this server, but it is not reachable "
        f"yet: {connection.status()}. Its tools are offered once it is."
    )


@plugin.command("mcp disable", "Stop offering an MCP server's tools here", _NAME, admin_only=True)
async def disable_command(ctx: CommandContext, name: str) -> str:
    """Turn the server off here (its connection stays for other servers)."""
    connection, _ = await _choose(ctx, name, False)
    return f"MCP server {connection.name} is now off in this server."


@plugin.command(
    "mcp tools",
    "List an MCP server's tools, or allow or deny one here",
    _NAME,
    Option(
        "change",
        description="list, allow or deny",
        choices=("list", "allow", "deny"),
        required=False,
    ),
    Option(
        "tool", description="The tool's name (see /mcp tools NAME)", required=False, max_length=64
    ),
    admin_only=True,
)
async def tools_command(
    ctx: CommandContext, name: str, change: str | None = None, tool: str | None = None
) -> str:
    """Each tool with its description and whether it is on here; or change one."""
    connection = _connection(name)
    choices = _store()
    choice = (await choices.of(ctx.server_pk)).get(connection.name, Choice())
    await connection.ready(FIRST_WAIT_S)
    if change in (None, "list"):
        if not connection.tools:
            return f"MCP server {connection.name} has no tools known yet: {connection.status()}."
        lines = [f"MCP server {connection.name} ({'on' if choice.enabled else 'off'} here):"]
        for remote in sorted(connection.tools.values(), key=lambda t: t.name)[:MAX_LISTED_TOOLS]:
            state = "off" if remote.name in choice.denied else "on"
            lines.append(
                f"• {quoted(remote.name, 48)} [{state}]: {quoted(remote.description, 100)}"
            )
        return "\n".join(lines)
    if not tool:
        raise InputRejected(
            f"Name the tool to {change}, e.g. /mcp tools {connection.name} {change} TOOL"
        )
    wanted = tool.strip()
    if connection.tools and wanted not in connection.tools:
        names = ", ".join(quoted(t, 48) for t in sorted(connection.tools)[:MAX_LISTED_TOOLS])
        raise InputRejected(f"{connection.name} has no tool {quoted(wanted, 48)}; it has {names}.")
    denied = choice.denied - {wanted} if change == "allow" else choice.denied | {wanted}
    await choices.set(ctx.server_pk, connection.name, Choice(choice.enabled, frozenset(denied)))
    verb = "on" if change == "allow" else "off"
    return (
        f"Tool {quoted(wanted, 48)} of MCP server {connection.name} is now {verb} in this server."
    )
