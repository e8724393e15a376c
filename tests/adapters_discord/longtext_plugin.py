"""A tiny plugin for the long-reply stories: ``/essay`` answers with a long text,
``/say`` echoes a string option that declares no ``max_length`` of its own."""

from __future__ import annotations

from core.plugin import CommandContext, Option, Plugin

plugin = Plugin("essay", "Long answers (tests)")


def essay(chars: int) -> str:
    """Prose and Python blocks, in turn, until the text has ``chars`` characters."""
    prose = "The quick brown fox jumps over the lazy dog, again and again. " * 5
    code = "```python\n" + "\n".join(f"print({i})  # step {i}" for i in range(60)) + "\n```"
    parts: list[str] = []
    while sum(len(part) + 2 for part in parts) < chars:
        parts.append(code if len(parts) % 2 else prose.strip())
    return "\n\n".join(parts)[:chars].strip()


@plugin.command(
    "essay",
    "Write a long text",
    Option("chars", type="integer", description="How long", min_value=1, max_value=100_000),
)
async def write_essay(ctx: CommandContext, chars: int) -> str:
    """An essay of ``chars`` characters."""
    return essay(chars)


@plugin.command("say", "Repeat the text", Option("text", description="What to say", rest=True))
async def say(ctx: CommandContext, text: str) -> str:
    """The text, as given."""
    return text
