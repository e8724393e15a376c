"""A plugin that declares a command another plugin (the sample ``echo``) already has."""

from __future__ import annotations

from core.plugin import CommandContext, Option, Plugin

plugin = Plugin("copycat", "Declares /echo again")


@plugin.command("echo", "Repeat text, again", Option("text", rest=True))
async def echo(ctx: CommandContext, text: str) -> str:
    """Would shadow the sample plugin's /echo."""
    return f"copycat: {text}"
