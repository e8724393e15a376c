"""A plugin for the port stories: a buffered outbound gate, requirements on tools, actions."""

from __future__ import annotations

from core.adapter import DELETE
from core.events import Error, Event, MessageEvent, ReplyPart, Text
from core.plugin import CommandContext, HookContext, Plugin, ToolContext

plugin = Plugin("gate", "Port stories: a gate, tool requirements and platform actions")
order: list[str] = []  # which outbound hooks ran, in order


@plugin.outbound(buffered=True, priority=10)
async def gate(ctx: HookContext, part: ReplyPart) -> ReplyPart | None:
    """Withhold answers that say "forbidden"; rename "colour" to "color"."""
    order.append("gate")
    if isinstance(part, Text):
        if "forbidden" in part.text:
            return Error("This answer was withheld.")
        return Text(part.text.replace("colour", "color"))
    return part


@plugin.outbound(priority=200)
async def last(ctx: HookContext, part: ReplyPart) -> ReplyPart | None:
    """Runs after the echo plugin's hook (priority 100)."""
    order.append("last")
    return part


@plugin.inbound
async def delete_spam(ctx: HookContext, event: Event) -> Event | None:
    """Delete messages that say "spam" where the platform can; drop them either way."""
    if isinstance(event, MessageEvent) and "spam" in event.text:
        if ctx.actions is not None and DELETE in ctx.actions.capabilities:
            await ctx.actions.delete_message(ctx.origin, event.message_id)
        return None
    return event


@plugin.tool(admin_only=True)
async def purge(ctx: ToolContext) -> str:
    """Delete the channel's history (admins only)."""
    return "purged"


@plugin.tool(needs=(DELETE,))
async def tidy(ctx: ToolContext) -> str:
    """Delete the bot's own last message (platforms that can delete)."""
    return "tidied"


@plugin.command("upload", "Read the attached file")
async def upload(ctx: CommandContext) -> str:
    """Say how long each attachment is (read through the core's cap)."""
    sizes = [f"{item.filename}: {len(await item.read())} bytes" for item in ctx.attachments]
    return "; ".join(sizes) or "no file"
