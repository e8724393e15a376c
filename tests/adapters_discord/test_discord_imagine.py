"""Stories of /imagine on a (fake) Discord, with the fake image back end.

A member asks for an image with slash-command options; the bot defers at once, shows the
job's progress (under a Cancel button) in the original response, then the picture, a
summary and reroll / variations / upscale buttons. Buttons reroll and cancel; an admin can
switch the plugin off, which takes ``/imagine`` out of the menu and ``generate_image``
away from the agent.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.config import Settings
from plugins.imagine.jobs import JobStore
from tests.adapters_discord.conftest import Bot
from tests.adapters_discord.test_discord_stories import EPHEMERAL, answered, reply_to
from tests.discord_fake import Interaction
from tests.imagine.fake_backend import FakeImageBackend

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFERRED = 5
ORIGINAL = "/webhooks/*/messages/@original"


@pytest.fixture
def images() -> FakeImageBackend:
    """The image back end the bot's imagine plugin gets."""
    return FakeImageBackend()


@pytest.fixture
def image_backend(images: FakeImageBackend) -> FakeImageBackend:
    """The ``bot`` fixture starts the app with this back end."""
    return images


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The Discord stories' settings, with small images."""
    settings.plugins.config["imagine"] = {
        "default_width": 64,
        "default_height": 64,
        "default_steps": 4,
        "max_batch": 1,
    }
    return settings


def buttons_of(message: dict[str, Any] | None) -> list[str]:
    """The custom ids of a message's buttons, row by row."""
    rows = (message or {}).get("components") or []
    return [button["custom_id"] for row in rows for button in row["components"]]


async def imagine(bot: Bot, prompt: str = "a red apple") -> Interaction:
    """The member runs ``/imagine prompt:… width:64 height:64 steps:4 seed:7``."""
    options = {"prompt": prompt, "width": 64, "height": 64, "steps": 4, "seed": 7}
    return await bot.fake.invoke_command(
        bot.guild, bot.general, bot.member, "imagine", options=options
    )


async def picture(bot: Bot, interaction: Interaction) -> dict[str, Any]:
    """Wait for the message of ``interaction`` that carries the result buttons."""

    def found() -> dict[str, Any] | None:
        for message in [interaction.original, *interaction.followups]:
            if any(":reroll:" in custom_id for custom_id in buttons_of(message)):
                return message
        return None

    return await bot.until(found)


async def progress_shown(bot: Bot, interaction: Interaction) -> dict[str, Any]:
    """Wait until the original response shows a progress line; return it."""

    def shown() -> dict[str, Any] | None:
        original = interaction.original or {}
        return original if (original.get("content") or "").startswith("⏳ image") else None

    return await bot.until(shown)


def job_of(message: dict[str, Any]) -> str:
    """The job id in a message's first button."""
    return buttons_of(message)[0].rsplit(":", 1)[1]


async def test_imagine_defers_shows_progress_then_the_picture_with_buttons(
    bot: Bot, images: FakeImageBackend
) -> None:
    images.hold = True  # the job waits after its first step, so its progress shows

    asked = await imagine(bot)

    await bot.until(lambda: asked.acknowledged)
    assert asked.callback_type == DEFERRED
    working = await progress_shown(bot, asked)
    job = job_of(working)
    assert buttons_of(working) == [f"imagine:cancel:{job}"]
    images.release()
    done = await picture(bot, asked)

    request = images.submitted[0]
    assert (request.prompt, request.width, request.height, request.steps, request.seed) == (
        "a red apple",
        64,
        64,
        4,
        7,
    )
    original = asked.original
    assert original is not None
    assert original["content"] == "seed 7"
    assert [a["filename"] for a in original["attachments"]] == [f"{job}-0.png"]
    assert buttons_of(original) == []  # the Cancel button went with the progress
    uploads = [f for call in bot.fake.calls_to("PATCH", ORIGINAL) for f in call.files]
    assert [f.data[:8] for f in uploads] == [PNG_MAGIC]
    progress_edits = [
        c
        for c in bot.fake.calls_to("PATCH", ORIGINAL)
        if "⏳" in ((c.json or {}).get("content") or "")
    ]
    assert progress_edits, "progress was shown by editing the original response"
    assert "seed 7" in done["content"] and '"a red apple"' in done["content"]
    assert buttons_of(done) == [
        f"imagine:reroll:{job}",
        f"imagine:variations:{job}",
        f"imagine:upscale:{job}",
    ]


async def test_reroll_delivers_a_new_image_with_a_new_seed(
    bot: Bot, images: FakeImageBackend
) -> None:
    first = await picture(bot, await imagine(bot))
    job = job_of(first)

    pressed = await bot.fake.press_button(first, bot.member, f"imagine:reroll:{job}")

    again = await picture(bot, pressed)
    seed = images.submitted[-1].seed
    assert seed != 7 and images.submitted[-1].prompt == "a red apple"
    assert f"(reroll of {job})" in again["content"]
    assert re.search(rf"\bseed {seed}\b", again["content"])
    assert pressed.original is not None
    assert pressed.original["attachments"], "the new image is in the press's response"
    assert job_of(again) != job


async def test_cancel_ends_a_long_job(bot: Bot, images: FakeImageBackend) -> None:
    images.hold = True  # a long job: it will not finish by itself
    asked = await imagine(bot, "a very slow painting")
    working = await progress_shown(bot, asked)
    job = job_of(working)

    pressed = await bot.fake.press_button(working, bot.member, f"imagine:cancel:{job}")

    assert (await answered(bot, pressed))["content"] == "Cancelled."
    ended = await bot.until(
        lambda: asked.original and asked.original["content"] == "Cancelled." and asked.original
    )
    assert buttons_of(ended) == []
    assert images.cancelled == [job]
    stored = await JobStore(bot.app.services.storage.engine).get(job)
    assert stored is not None and stored.status == "cancelled"


async def test_disabling_imagine_removes_the_command_and_the_tool(bot: Bot) -> None:
    await bot.until(lambda: "imagine" in bot.command_names())
    await reply_to(
        bot, await bot.fake.send_message(bot.general, bot.member, "draw a cat", mentions_bot=True)
    )
    assert "generate_image" in bot.model.offered[-1]

    disabling = await bot.fake.invoke_command(
        bot.guild,
        bot.general,
        bot.admin,
        "plugins",
        subcommand="disable",
        options={"name": "imagine"},
    )

    assert "disabled" in (await answered(bot, disabling))["content"]
    await bot.until(lambda: "imagine" not in bot.command_names())
    asked = await bot.fake.send_message(
        bot.general, bot.member, "draw a cat with 3 legs", mentions_bot=True
    )
    await reply_to(bot, asked)
    assert "generate_image" not in bot.model.offered[-1]
    assert "calculate" in bot.model.offered[-1]  # the other plugins' tools stay


async def test_a_button_of_a_job_that_no_longer_exists_gets_an_ephemeral_note(bot: Bot) -> None:
    shown = await picture(bot, await imagine(bot))

    pressed = await bot.fake.press_button(shown, bot.member, "imagine:variations:0123456789abcdef")

    note = await bot.until(lambda: pressed.followups and pressed.followups[-1])
    assert "no longer exists" in note["content"]
    assert note["flags"] & EPHEMERAL
    assert pressed.original is None  # the "thinking" response went first
