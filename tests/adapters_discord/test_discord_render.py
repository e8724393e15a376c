"""Rendering: long text splits cleanly; images go into the response, too-big files become notes."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.adapters.discord.sinks import MESSAGE_LIMIT
from bot.text import split_message as _split
from tests.adapters_discord.conftest import Bot


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    return _split(text, limit)


def test_short_text_is_one_chunk() -> None:
    assert split_message("hello") == ["hello"]


def test_long_prose_is_cut_at_line_breaks_within_the_limit() -> None:
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(100))

    chunks = split_message(text, limit=500)

    assert all(len(chunk) <= 500 for chunk in chunks)
    assert "\n".join(chunks) == text


def test_a_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})" for i in range(200))
    text = f"Intro\n```py\n{code}\n```\nOutro"

    chunks = split_message(text, limit=300)

    assert len(chunks) > 2
    assert all(len(chunk) <= 300 for chunk in chunks)
    for chunk in chunks[:-1]:
        assert chunk.endswith("\n```")
    for chunk in chunks[1:]:
        assert chunk.startswith("```py\n")
    inner = [c.removeprefix("```py\n").removesuffix("\n```") for c in chunks]
    assert "\n".join(inner) == text


async def test_images_fill_the_response_and_oversized_ones_become_notes(
    bot: Bot, tmp_path: Path
) -> None:

    small = tmp_path / "sunset.png"
    small.write_bytes(b"\x89PNG small")
    huge = tmp_path / "poster.png"
    huge.write_bytes(b"\0" * (10 * 1024 * 1024 + 1))  # just over the 10 MiB limit
    sys.modules["tests.adapters_discord.buttons_plugin"].pictures.extend([small, huge])

    interaction = await bot.fake.invoke_command(bot.guild, bot.general, bot.member, "picture")

    note = await bot.until(lambda: interaction.followups and interaction.followups[-1])
    original = interaction.original
    assert original is not None
    assert original["content"] == "sunset"
    assert [a["filename"] for a in original["attachments"]] == ["sunset.png"]
    assert "poster.png is too large to upload here" in note["content"]
    assert note["attachments"] == []
