"""A tiny plugin for the Discord stories: ``/ask`` shows buttons (presses are kept),
``/picture`` attaches files."""

from __future__ import annotations

from pathlib import Path

from core.events import Button, Buttons, Image, ReplyPart, Text
from core.plugin import CommandContext, Plugin

plugin = Plugin("poll", "Asks a question with buttons (tests)")
presses: list[tuple[str, str]] = []  # (user id, arg) of every press


@plugin.command("ask", "Ask a yes/no question")
async def ask(ctx: CommandContext) -> list[ReplyPart]:
    """A question and two buttons."""
    return [
        Text("Shall we?"),
        Buttons((Button("Yes", "poll:vote:yes", "success"), Button("No", "poll:vote:no"))),
    ]


@plugin.button("vote")
async def vote(ctx: CommandContext, arg: str) -> str:
    """Record the vote."""
    presses.append((ctx.origin.user_id, arg))
    return f"{ctx.origin.user_name} voted {arg}"


pictures: list[Path] = []  # what /picture attaches (set by the story)


@plugin.command("picture", "Attach the prepared pictures")
async def picture(ctx: CommandContext) -> list[ReplyPart]:
    """One Image part per prepared file."""
    return [Image(path, caption=path.stem) for path in pictures]
