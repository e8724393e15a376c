"""Stories: the moderation plugin on Discord. A member's abuse in a channel, not said to
the bot, is deleted, its author timed out and the moderators alerted — real discord.py
calls, checked and recorded by the fake Discord."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DiscordSettings, LimitsSettings, PluginsSettings, Settings
from core.events import Origin
from plugins.moderation.policy import Rule
from tests.adapters_discord.conftest import Bot
from tests.adapters_discord.test_discord_actions import empower


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The stories' settings with moderation on."""
    return Settings(
        data_dir=tmp_path / "data",
        limits=LimitsSettings(user_burst=1000, server_burst=1000),
        plugins=PluginsSettings(disable_entry_points=True, enabled={"moderation": True}),
        discord=DiscordSettings(edit_interval_s=0.2, sync_debounce_s=0.05),
    )


async def _policy(bot: Bot, mods_channel: str) -> None:
    """Profanity: time out; alerts to ``mods_channel`` (as /mod and /plugins config do)."""
    from plugins.moderation import _state

    guild = Origin("discord", str(bot.guild.id), str(bot.general.id), str(bot.admin.id))
    server_pk = (await bot.app.services.storage.identify(guild)).server_pk
    assert _state.store is not None
    await _state.store.set_rule(server_pk, "profanity", Rule(0.85, "timeout"))
    await bot.app.plugins.scoped.set(
        "server", server_pk, "moderation", "alert_channel", mods_channel
    )


async def test_abuse_in_a_channel_is_deleted_its_author_timed_out_and_mods_alerted(
    bot: Bot,
) -> None:
    await empower(bot)
    mods = bot.guild.add_channel("mods")
    await _policy(bot, str(mods.id))

    said = await bot.fake.send_message(bot.general, bot.member, "you are all fucking morons")

    await bot.until(lambda: bot.answers_in(mods) and bot.answers_in(bot.general))
    (deleted,) = bot.fake.deletes_in(bot.general)
    assert deleted.path.endswith(f"/messages/{said['id']}") and deleted.status == 204
    (timeout,) = bot.fake.timeouts_of(bot.member)
    assert timeout.status == 200 and timeout.reason == "moderation"
    [notice] = bot.answers_in(bot.general)
    assert notice["content"] == (
        "⚠️ Your message was removed for profanity: a listed word, and you are timed out for "
        "10 minutes."
    ), notice
    [alert] = bot.answers_in(mods)
    assert "'you are all fucking morons'" in alert["content"], alert
    assert "Action: timeout." in alert["content"], alert


async def test_fine_chat_in_the_channel_is_left_alone(bot: Bot) -> None:
    await empower(bot)
    await bot.fake.send_message(bot.general, bot.member, "how do I kill the process on 3000?")
    await bot.fake.send_message(bot.general, bot.member, "ok, found it", mentions_bot=True)
    await bot.until(lambda: bot.answers_in(bot.general))
    assert bot.fake.deletes_in(bot.general) == []
    assert [m["content"] for m in bot.answers_in(bot.general)] == ["Hello from Discord."]
