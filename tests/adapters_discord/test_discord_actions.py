"""Stories: a plugin acts on Discord through the adapter's actions (delete, time out, post).

The ``warden`` test plugin (``tests.adapters.warden_plugin``) acts when a message asks;
the real discord.py client makes the calls and the fake Discord checks them as Discord
would (permissions, the 28-day limit) and records them. What a plugin gets back is ours:
nothing, or an ``PlatformError`` whose cause is discord.py's.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import discord
import pytest

from bot.plugins import Source
from core.adapter import BUTTONS, DELETE, EDITS, FILES, POST, TIMEOUT
from core.errors import PlatformError
from tests.adapters_discord.conftest import WAIT_S, Bot
from tests.discord_fake.models import MANAGE_MESSAGES, MODERATE_MEMBERS

MODULE = "tests.adapters.warden_plugin"


@pytest.fixture
async def warden(bot: Bot) -> AsyncIterator[ModuleType]:
    """The ``warden`` plugin, loaded and with ``/whoami`` in the guild's menu."""
    bot.app.plugins.sources["warden"] = Source("warden", MODULE)
    await bot.app.plugins.load("warden")
    module = sys.modules[MODULE]
    module.reset()
    await bot.until(lambda: "whoami" in bot.command_names())
    yield module
    module.reset()


async def empower(bot: Bot) -> None:
    """Give the bot Manage Messages and Moderate Members in the guild."""
    await bot.fake.add_role(
        bot.guild, "Warden", MANAGE_MESSAGES | MODERATE_MEMBERS, members=[bot.guild.bot_member]
    )


async def outcome(warden: ModuleType) -> BaseException | None:
    """What the plugin's one action ended in (None: done)."""
    ((_, result),) = await warden.settled(lambda: warden.outcomes, WAIT_S)
    return result


def until_of(call: Any) -> dt.datetime:
    """The end of the timeout a PATCH call asked for."""
    return dt.datetime.fromisoformat(call.json["communication_disabled_until"])


async def test_the_adapter_offers_deleting_timing_out_and_posting(bot: Bot) -> None:
    assert bot.adapter.capabilities == {BUTTONS, EDITS, FILES, DELETE, TIMEOUT, POST}


async def test_a_message_the_bot_does_not_answer_is_still_read_and_deleted(
    bot: Bot, warden: ModuleType
) -> None:
    await empower(bot)

    asked = await bot.fake.send_message(bot.general, bot.member, "deleteme")

    assert await outcome(warden) is None
    (call,) = bot.fake.deletes_in(bot.general)
    assert call.path == f"/channels/{bot.general.id}/messages/{asked['id']}"
    assert call.status == 204
    assert bot.fake.message(asked["id"]) is None
    assert bot.answers_in(bot.general) == []  # read, acted on, not answered


async def test_without_manage_messages_discord_refuses_and_the_plugin_hears_why(
    bot: Bot, warden: ModuleType
) -> None:
    asked = await bot.fake.send_message(bot.general, bot.member, "deleteme")

    error = await outcome(warden)

    assert isinstance(error, PlatformError)
    assert str(error) == "Discord refused to delete the message: missing Manage Messages"
    assert isinstance(error.__cause__, discord.Forbidden)
    assert [call.status for call in bot.fake.deletes_in(bot.general)] == [403]
    assert bot.fake.message(asked["id"]) is not None


async def test_deleting_an_unknown_message_is_our_error_not_discord_pys(
    bot: Bot, warden: ModuleType
) -> None:
    await empower(bot)

    await bot.fake.send_message(bot.general, bot.member, "delete 4242", mentions_bot=True)

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert not isinstance(error, discord.DiscordException)
    assert str(error) == "Discord could not delete the message: Unknown Message"
    assert isinstance(error.__cause__, discord.NotFound)


async def test_muteme_times_the_member_out_for_ten_minutes(bot: Bot, warden: ModuleType) -> None:
    await empower(bot)
    before = dt.datetime.now(dt.UTC)

    await bot.fake.send_message(bot.general, bot.member, "muteme", mentions_bot=True)

    assert await outcome(warden) is None
    (call,) = bot.fake.timeouts_of(bot.member)
    assert call.status == 200
    assert call.reason == "asked for it"
    until = until_of(call)
    assert before + dt.timedelta(seconds=600) <= until
    assert until <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=600)
    assert bot.member.communication_disabled_until == until.isoformat()
    assert bot.answers_in(bot.general) == []


async def test_a_sixty_day_timeout_is_cut_to_discords_twenty_eight(
    bot: Bot, warden: ModuleType
) -> None:
    await empower(bot)
    sixty_days = 60 * 24 * 3600

    await bot.fake.send_message(bot.general, bot.member, f"muteme {sixty_days}", mentions_bot=True)

    assert await outcome(warden) is None  # the fake answers 400 beyond 28 days
    (call,) = bot.fake.timeouts_of(bot.member)
    left = until_of(call) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=28) - dt.timedelta(minutes=2) < left <= dt.timedelta(days=28)


async def test_without_moderate_members_a_timeout_is_refused_with_the_reason(
    bot: Bot, warden: ModuleType
) -> None:
    await bot.fake.send_message(bot.general, bot.member, "muteme", mentions_bot=True)

    error = await outcome(warden)

    assert isinstance(error, PlatformError)
    assert str(error) == "Discord refused to time the member out: missing Moderate Members"
    assert bot.member.communication_disabled_until is None


async def test_nobody_is_timed_out_in_direct_messages(bot: Bot, warden: ModuleType) -> None:
    dm = bot.fake.dm_channel(bot.member.user)

    await bot.fake.send_message(dm, bot.member.user, "muteme")

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert "direct messages" in str(error)
    assert bot.fake.calls_to("PATCH", "/guilds/*") == []


async def test_an_alert_goes_to_the_moderators_channel_rendered_like_a_reply(
    bot: Bot, warden: ModuleType
) -> None:
    mods = bot.guild.add_channel("mods")  # made after the bot connected: it asks for it

    await bot.fake.send_message(bot.general, bot.member, f"alert {mods.id}", mentions_bot=True)

    assert await outcome(warden) is None
    (alert,) = bot.answers_in(mods)
    assert alert["content"] == "alert: bob <b>rang</b> the bell"  # Discord shows it as is
    assert "message_reference" not in alert  # it answers nobody
    (row,) = alert["components"]
    assert [b["custom_id"] for b in row["components"]] == ["warden:whoami:x"]
    assert bot.answers_in(bot.general) == []


async def test_a_post_to_another_guilds_channel_is_refused(bot: Bot, warden: ModuleType) -> None:
    elsewhere = bot.fake.add_guild("Elsewhere").add_channel("news")

    await bot.fake.send_message(bot.general, bot.member, f"alert {elsewhere.id}", mentions_bot=True)

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert "is not in the guild" in str(error)
    assert bot.fake.calls_to("POST", f"/channels/{elsewhere.id}/messages") == []


async def test_a_post_where_the_bot_may_not_write_is_refused_with_the_reason(
    bot: Bot, warden: ModuleType
) -> None:
    mods = bot.guild.add_channel("mods")
    bot.fake.forbid(mods)

    await bot.fake.send_message(bot.general, bot.member, f"alert {mods.id}", mentions_bot=True)

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert str(error) == f"Discord refused to post to channel {mods.id}: missing Send Messages"


async def test_origins_carry_the_members_roles_in_messages_commands_and_presses(
    bot: Bot, warden: ModuleType
) -> None:
    helper = await bot.fake.add_role(bot.guild, "Helper", 0, members=[bot.member])
    expected = (str(helper.id),)

    await bot.fake.send_message(bot.general, bot.member, "hi", mentions_bot=True)
    await warden.settled(lambda: warden.origins)
    await bot.fake.invoke_command(bot.guild, bot.general, bot.member, "whoami")
    await warden.settled(lambda: len(warden.origins) == 2)
    await bot.fake.send_message(bot.general, bot.member, f"alert {bot.general.id}")
    alerts = await bot.until(
        lambda: [m for m in bot.answers_in(bot.general) if m["content"].startswith("alert:")]
    )
    await bot.fake.press_button(alerts[0], bot.member, "warden:whoami:x")
    await warden.settled(lambda: len(warden.origins) == 4)
    await bot.fake.send_message(bot.general, bot.admin, "hi", mentions_bot=True)
    await warden.settled(lambda: len(warden.origins) == 5)

    message, command, _, press, admin = warden.origins
    assert message.roles == command.roles == press.roles == expected
    assert admin.roles == (str(bot.guild.admin_role.id),)
