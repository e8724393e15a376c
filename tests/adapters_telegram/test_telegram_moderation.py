"""Stories: the moderation plugin on Telegram. Abuse in a group, not said to the bot, is
deleted, its author restricted and the moderators' chat alerted — real
python-telegram-bot calls, checked and recorded by the fake Bot API."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import LimitsSettings, PluginsSettings, Settings, TelegramSettings
from core.events import Origin
from plugins.moderation.policy import Rule
from tests.adapters_telegram.conftest import Tg


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The stories' settings with moderation on."""
    return Settings(
        data_dir=tmp_path / "data",
        limits=LimitsSettings(user_burst=1000, server_burst=1000),
        plugins=PluginsSettings(disable_entry_points=True, enabled={"moderation": True}),
        telegram=TelegramSettings(poll_timeout_s=1, edit_interval_s=0.05, admin_cache_s=0),
    )


async def test_abuse_in_a_group_is_deleted_its_author_restricted_and_mods_alerted(
    tg: Tg,
) -> None:
    from plugins.moderation import _state

    group, mods, bob = tg.fake.group("Lab"), tg.fake.group("Mods"), tg.fake.user("Bob")
    where = Origin("telegram", str(group.id), str(group.id), str(bob.id))
    server_pk = (await tg.app.services.storage.identify(where)).server_pk
    assert _state.store is not None
    await _state.store.set_rule(server_pk, "profanity", Rule(0.85, "timeout"))
    scoped = tg.app.plugins.scoped
    await scoped.set("server", server_pk, "moderation", "alert_channel", str(mods.id))

    said = await tg.fake.send_text(group, bob, "you are all f*cking <b>morons</b>")

    await tg.fake.until(lambda: tg.fake.bot_messages(mods) and tg.fake.bot_messages(group))
    assert tg.fake.deleted(group) == [said["message_id"]]
    restricted = tg.fake.restriction(group, bob)
    assert restricted is not None and not restricted["forever"], restricted
    [notice] = tg.fake.bot_messages(group)
    assert notice["text"].endswith("and you are timed out for 10 minutes."), notice
    [alert] = tg.fake.bot_messages(mods)
    assert "'you are all f*cking <b>morons</b>'" in alert["text"], alert  # shown as text
    assert "Action: timeout." in alert["text"], alert
