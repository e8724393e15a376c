"""Built-in ``admin`` plugin: /plugins, /prefs, /prompt, /channel, /forget and /help.

Admin-only subcommands are marked ``admin_only``: the router checks the user's admin
status and writes the audit log before any handler here runs. This plugin is required
(it cannot be disabled), so an admin can never lock themselves out of /plugins.
"""

from __future__ import annotations

from core.events import Text
from core.plugin import CommandContext, Option, Plugin

plugin = Plugin(
    "admin",
    "Server administration: plugins, system prompt, memory and help",
    version="1.0.0",
    required=True,
)

# Every free-text option has a max_length: Discord's menu and the core's bind refuse more.
_NAME = Option("name", description="Plugin name", max_length=64)

plugin.group("plugins", "List, enable, disable and configure plugins in this server")


@plugin.command("plugins list", "Show every plugin and whether it is on in this server")
async def plugins_list(ctx: CommandContext) -> str:
    """One line per loaded plugin: name, on/off here and why, description."""
    lines = ["Plugins in this server:"]
    for item in await ctx.admin.plugins(ctx.server_pk):
        state = "on " if item.enabled else "off"
        lines.append(
            f"  {item.name:<12} {state} ({item.why})  v{item.version} — {item.description}"
        )
    return "\n".join(lines)


@plugin.command("plugins enable", "Turn a plugin on in this server", _NAME, admin_only=True)
async def plugins_enable(ctx: CommandContext, name: str) -> str:
    """Enable plugin ``name`` in this server."""
    await ctx.admin.set_enabled(ctx.server_pk, name.lower(), True)
    return f"Plugin {name.lower()} is now enabled in this server."


@plugin.command("plugins disable", "Turn a plugin off in this server", _NAME, admin_only=True)
async def plugins_disable(ctx: CommandContext, name: str) -> str:
    """Disable plugin ``name`` in this server: no tools, commands or hooks here."""
    await ctx.admin.set_enabled(ctx.server_pk, name.lower(), False)
    return f"Plugin {name.lower()} is now disabled in this server."


@plugin.command(
    "plugins config",
    "Show a plugin's settings here, or set one for this server or channel",
    _NAME,
    Option("key", description="Setting to change", required=False, max_length=64),
    Option("value", description="New value", required=False, rest=True, max_length=1000),
    admin_only=True,
)
async def plugins_config(
    ctx: CommandContext, name: str, key: str | None = None, value: str | None = None
) -> str:
    """Show plugin ``name``'s settings, or set ``key`` to ``value`` here (the setting's
    scope decides: the whole server, or this channel)."""
    name = name.lower()
    if key is None:
        return await _shown(ctx, name)
    if value is None:
        return f"Give a value: /plugins config {name} {key} VALUE"
    stored, scope = await ctx.admin.set_plugin_config(ctx.caller, name, key, value)
    where = "in this channel" if scope == "channel" else "in this server"
    return f"{name}.{key} is now {stored!r} {where}."


@plugin.command(
    "prefs",
    "Show a plugin's settings for you, or set one of your own",
    _NAME,
    Option("key", description="Setting to change", required=False, max_length=64),
    Option("value", description="New value", required=False, rest=True, max_length=1000),
)
async def prefs(
    ctx: CommandContext, name: str, key: str | None = None, value: str | None = None
) -> str:
    """Anyone's own settings of a plugin (those it declares per user)."""
    name = name.lower()
    if key is None:
        return await _shown(ctx, name)
    if value is None:
        return f"Give a value: /prefs {name} {key} VALUE"
    stored, _ = await ctx.admin.set_plugin_config(ctx.caller, name, key, value, as_user=True)
    return f"{name}.{key} is now {stored!r} for you."


async def _shown(ctx: CommandContext, name: str) -> str:
    config = await ctx.admin.plugin_config(ctx.caller, name)
    if config is None:
        return f"Plugin {name} has no settings."
    items = config.items()
    return f"Settings of {name} here:\n" + "\n".join(f"  {k} = {v!r}" for k, v in items)


plugin.group("prompt", "Show or change this server's system prompt")


@plugin.command("prompt show", "Show the system prompt used in this server")
async def prompt_show(ctx: CommandContext) -> str:
    """The server's own system prompt, or the configured default."""
    own = await ctx.admin.system_prompt(ctx.server_pk)
    if own is None:
        return "This server uses the default system prompt:\n" + ctx.admin.default_system_prompt()
    return "This server's system prompt:\n" + own


@plugin.command(
    "prompt set",
    "Set the system prompt for this server",
    Option("text", description="The new system prompt", rest=True, max_length=4000),
    admin_only=True,
)
async def prompt_set(ctx: CommandContext, text: str) -> str:
    """Store a server-specific system prompt."""
    await ctx.admin.set_system_prompt(ctx.server_pk, text.strip())
    return "System prompt updated for this server."


@plugin.command("prompt reset", "Go back to the default system prompt", admin_only=True)
async def prompt_reset(ctx: CommandContext) -> str:
    """Drop the server-specific system prompt."""
    await ctx.admin.set_system_prompt(ctx.server_pk, None)
    return "This server now uses the default system prompt."


plugin.group("channel", "Settings of this channel")


@plugin.command(
    "channel chat",
    "Answer every message in this channel (on), or only mentions and replies (off)",
    Option("mode", description="on or off", choices=("on", "off")),
    admin_only=True,
)
async def channel_chat(ctx: CommandContext, mode: str) -> str:
    """Mark this channel as a chat channel (or not)."""
    await ctx.admin.set_chat_channel(ctx.channel_pk, mode == "on")
    if mode == "on":
        return "I will answer every message in this channel."
    return "In this channel I answer only when mentioned or replied to."


@plugin.command("forget", "Forget our conversation in this channel")
async def forget(ctx: CommandContext) -> str:
    """Delete this conversation's stored messages."""
    count = await ctx.admin.clear_conversation(ctx.conversation_pk)
    return f"Forgotten ({count} messages removed)." if count else "There was nothing to forget."


@plugin.command("help", "List the commands available in this server")
async def help_(ctx: CommandContext) -> Text:
    """Every command of the plugins enabled here, with subcommands and descriptions."""
    lines = ["Commands here:"]
    for cmd in await ctx.admin.commands(ctx.server_pk):
        lines.append(f"  /{cmd.name} — {cmd.description}")
        for sub in cmd.subcommands:
            admin = " (admins)" if sub.admin_only or cmd.admin_only else ""
            lines.append(f"      {sub.name} — {sub.description}{admin}")
    lines.append("Anything else you write goes to the assistant.")
    return Text("\n".join(lines))
