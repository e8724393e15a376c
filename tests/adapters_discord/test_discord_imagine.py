"""Stories of /imagine on a (fake) Discord, with the fake image back end.

A member asks for an image with slash-command options; the bot defers at once, shows the
job's progress in the original response, then the picture with reroll / variations /
upscale buttons. Buttons reroll and cancel; an admin can switch the plugin off, which
takes ``/imagine`` out of the menu and ``generate_image`` away from the agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import ImagineSettings, Settings
from plugins.imagine import BACKEND_FACTORY_ENV
from tests.adapters_discord.conftest import Bot
from tests.adapters_discord.test_discord_stories import EPHEMERAL, answered, reply_to
from tests.discord_fake import Interaction
from tests.imagine import fake_backend
from tests.imagine.fake_backend import FakeImageBackend

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFERRED = 5


@pytest.fixture
def images(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeImageBackend]:
    """The image back end the bot's imagine plugin gets (the plugin's one test seam)."""
    backend = FakeImageBackend()
    monkeypatch.setenv(BACKEND_FACTORY_ENV, fake_backend.FACTORY)
    fake_backend.install(backend)
    yield backend
    fake_backend.uninstall_all()


@pytest.fixture
def settings(settings: Settings, images: FakeImageBackend) -> Settings:
    """The Discord stories' settings with small images (and the fake back end installed)."""
    settings.imagine = ImagineSettings(
        default_width=64, default_height=64, default_steps=4, max_batch=1
    )
    return settings


def buttons_of(message: dict[str, Any]) -> list[str]:
    """The custom ids of a message's buttons, row by row."""
    return [c["custom_id"] for row in message.get("components") or [] for c in row["components"]]


async def imagine(bot: Bot, prompt: str = "a red apple", **options: Any) -> Interaction:
    """The member runs ``/imagine prompt:… width:64 height:64 steps:4 seed:7``."""
    chosen = {"prompt": prompt, "width": 64, "height": 64, "steps": 4, "seed": 7, **options}
    return await bot.fake.invoke_command(bot.guild, bot.general, bot.member, "imagine", options=chosen)


async def picture(bot: Bot, interaction: Interaction) -> dict[str, Any]:
    """Wait for the message of ``interaction`` that carries the result buttons."""

    def found() -> dict[str, Any] | None:
        for message in [interaction.original, *interaction.followups]:
            if message and any(":reroll:" in b for b in buttons_of(message)):
                return message
        return None

    return await bot.until(found)


async def test_imagine_defers_shows_progress_then_the_picture_with_buttons(
    bot: Bot, images: FakeImageBackend
) -> None:
    images.hold = True  # the job waits after its first step, so its progress shows

    asked = await imagine(bot)

    assert asked.callback_type == DEFERRED
    progress = await bot.until(
        lambda: asked.original and "⏳" in (asked.original.get("content") or "") and asked.original
    )
    images.release()
    done = await picture(bot, asked)
    for call in asked.responses:
        print(call, call.json)
    print(asked.original)
    print(asked.followups)
