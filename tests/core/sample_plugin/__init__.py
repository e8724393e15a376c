"""A plugin used by the core stories: a tool, commands, both hooks and a background task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel

from core.config import channel, server, user
from core.events import Event, Image, MessageEvent, Progress, ReplyPart, Text
from core.plugin import (
    CommandContext,
    HookContext,
    Option,
    Plugin,
    PluginContext,
    ToolContext,
    ToolResult,
)


class EchoConfig(BaseModel):
    """Settings of the sample plugin."""

    suffix: str = server(" [echo]")
    topic: str = channel("")  # per channel, set by admins
    tone: str = user("plain")  # each user's own


plugin = Plugin("echo", "Sample plugin for tests", config_model=EchoConfig)
events: list[str] = []
started = asyncio.Event()
contexts: list[object] = []  # every context the core handed this plugin (tests/core/test_port.py)


@plugin.tool
async def whoami(ctx: ToolContext) -> str:
    """Tell who is asking (from injected context)."""
    contexts.append(ctx)
    return f"user {ctx.origin.user_id} in server {ctx.origin.server_id}"


@plugin.tool
async def snapshot(caption: str, ctx: ToolContext) -> ToolResult:
    """Make a picture for the user.

    Args:
        caption: What the picture shows.
    """
    return ToolResult("made a picture", (Image(Path("/tmp/picture.png"), caption),))


@plugin.tool
async def lookup(key: str, ctx: ToolContext) -> str:
    """Look something up in a back end that fails with internals in its message.

    Args:
        key: What to look up.
    """
    raise RuntimeError(f"connection to postgresql://bot:hunter2@10.0.0.5/atelier lost ({key})")


@plugin.inbound
async def mark_inbound(ctx: HookContext, event: Event) -> Event | None:
    """Record every event; drop messages that say 'drop me'."""
    contexts.append(ctx)
    events.append(f"in:{ctx.origin.server_id}")
    if isinstance(event, MessageEvent) and event.text == "drop me":
        return None
    return event


@plugin.outbound
async def add_suffix(ctx: HookContext, part: ReplyPart) -> ReplyPart | None:
    """Append the configured suffix to final texts."""
    contexts.append(ctx)
    if isinstance(part, Text):
        assert isinstance(ctx.config, EchoConfig)
        return Text(part.text + ctx.config.suffix)
    return part


@plugin.command("echo", "Repeat text", Option("text", rest=True))
async def echo(ctx: CommandContext, text: str) -> str:
    """Repeat the text."""
    contexts.append(ctx)
    return text


@plugin.command("slow", "Sleep then answer", Option("seconds", "number", max_value=60))
async def slow(ctx: CommandContext, seconds: float) -> AsyncIterator[ReplyPart]:
    """Report progress, sleep, answer with the order it ran in."""
    events.append(f"start:{ctx.origin.user_id}")
    yield Progress("sleeping")
    await asyncio.sleep(seconds)
    events.append(f"end:{ctx.origin.user_id}")
    yield Text(f"slept {seconds}")


@plugin.command("cfg", "Show the settings that apply to the caller here")
async def cfg(ctx: CommandContext) -> str:
    """Topic and tone as the core resolved them for this caller."""
    assert isinstance(ctx.config, EchoConfig)
    return f"topic={ctx.config.topic!r} tone={ctx.config.tone!r}"


@plugin.command("boom", "Raise an error")
async def boom(ctx: CommandContext) -> str:
    """Fail on purpose."""
    raise RuntimeError("kaboom")


@plugin.button("again")
async def again(ctx: CommandContext, arg: str) -> str:
    """A button handler."""
    return f"pressed {arg}"


@plugin.button("stop", when_disabled=True)
async def stop(ctx: CommandContext, arg: str) -> str:
    """A button that still works where the plugin was disabled (e.g. cancel a job)."""
    return f"stopped {arg}"


@plugin.task
async def heartbeat(ctx: PluginContext) -> None:
    """A background task that runs while the plugin is loaded."""
    contexts.append(ctx)
    started.set()
    await asyncio.Event().wait()
