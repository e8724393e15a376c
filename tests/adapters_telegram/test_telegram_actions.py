"""Stories: a plugin acts on Telegram through the adapter's actions (delete, restrict, post).

The ``warden`` test plugin (``tests.adapters.warden_plugin``) acts when a message asks;
the real python-telegram-bot makes the Bot API calls and the fake checks them as Telegram
would (supergroups only, admin rights, "for ever" outside 30 s..366 days) and records
them. What a plugin gets back is ours: nothing, or an ``PlatformError`` whose cause is
PTB's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from types import ModuleType

import pytest
from telegram.error import BadRequest

from bot.plugins import Source
from core.adapter import BUTTONS, DELETE, EDITS, FILES, POST, TIMEOUT
from core.errors import PlatformError
from tests.adapters_telegram.conftest import Tg

MODULE = "tests.adapters.warden_plugin"
DAY_S = 24 * 3600


@pytest.fixture
async def warden(tg: Tg) -> AsyncIterator[ModuleType]:
    """The ``warden`` plugin, loaded."""
    tg.app.plugins.sources["warden"] = Source("warden", MODULE)
    await tg.app.plugins.load("warden")
    module = sys.modules[MODULE]
    module.reset()
    yield module
    module.reset()


async def outcome(warden: ModuleType) -> BaseException | None:
    """What the plugin's one action ended in (None: done)."""
    ((_, result),) = await warden.settled(lambda: warden.outcomes)
    return result


async def test_the_adapter_offers_deleting_restricting_and_posting(tg: Tg) -> None:
    assert tg.adapter.capabilities == {BUTTONS, EDITS, FILES, DELETE, TIMEOUT, POST}


async def test_a_message_the_bot_does_not_answer_is_still_read_and_deleted(
    tg: Tg, warden: ModuleType
) -> None:
    group, bob = tg.fake.group("Lab"), tg.fake.user("Bob")

    asked = await tg.fake.send_text(group, bob, "deleteme")

    assert await outcome(warden) is None
    assert tg.fake.deleted(group) == [asked["message_id"]]
    assert tg.fake.bot_messages(group) == []  # read, acted on, not answered
    assert "typing" not in tg.fake.chat_actions(group)
    assert warden.origins[0].roles == ()  # Telegram has no roles


async def test_deleting_an_unknown_message_is_our_error_not_ptbs(
    tg: Tg, warden: ModuleType
) -> None:
    group, bob = tg.fake.group("Lab"), tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, "@atelier_bot delete 999")

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert str(error) == "Telegram refused to delete the message: Message to delete not found"
    assert isinstance(error.__cause__, BadRequest)


async def test_a_bot_that_is_no_admin_cannot_delete_and_the_plugin_hears_why(
    tg: Tg, warden: ModuleType
) -> None:
    group, bob = tg.fake.group("Lab"), tg.fake.user("Bob")
    tg.fake.demote_bot(group)

    await tg.fake.send_text(group, bob, "deleteme")

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert str(error) == "Telegram refused to delete the message: Message can't be deleted"
    assert tg.fake.deleted(group) == []


async def test_muteme_restricts_the_member_for_ten_minutes(tg: Tg, warden: ModuleType) -> None:
    group, bob = tg.fake.group("Lab"), tg.fake.user("Bob")
    before = time.time()

    await tg.fake.send_text(group, bob, "@atelier_bot muteme")

    assert await outcome(warden) is None
    restriction = tg.fake.restriction(group, bob)
    assert restriction is not None and not restriction["forever"]
    assert before + 600 <= restriction["until_date"] <= time.time() + 601
    assert not any(restriction["permissions"].values())  # may send nothing at all
    assert tg.fake.bot_messages(group) == []


async def test_five_seconds_become_half_a_minute_not_for_ever(tg: Tg, warden: ModuleType) -> None:
    group, bob = tg.fake.group("Lab"), tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, "@atelier_bot muteme 5")

    assert await outcome(warden) is None
    restriction = tg.fake.restriction(group, bob)
    assert restriction is not None and not restriction["forever"]
    assert 30 <= restriction["until_date"] - time.time() <= 40


async def test_five_hundred_days_become_366_not_for_ever(tg: Tg, warden: ModuleType) -> None:
    group, bob = tg.fake.group("Lab"), tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, f"@atelier_bot muteme {500 * DAY_S}")

    assert await outcome(warden) is None
    restriction = tg.fake.restriction(group, bob)
    assert restriction is not None and not restriction["forever"]
    assert 366 * DAY_S - 60 <= restriction["until_date"] - time.time() <= 366 * DAY_S


async def test_nobody_is_restricted_in_a_private_chat(tg: Tg, warden: ModuleType) -> None:
    bob = tg.fake.user("Bob")
    chat = tg.fake.private_chat(bob)

    await tg.fake.send_text(chat, bob, "muteme")

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert "private chat" in str(error)
    assert tg.fake.calls_of("restrictChatMember") == []


async def test_a_basic_group_cannot_restrict_and_the_plugin_hears_why(
    tg: Tg, warden: ModuleType
) -> None:
    group, bob = tg.fake.group("Old lab", supergroup=False), tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, "@atelier_bot muteme")

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert str(error) == (
        "Telegram refused to restrict the member: Method is available only for supergroups"
    )


async def test_an_alert_goes_to_the_moderators_chat_rendered_like_a_reply(
    tg: Tg, warden: ModuleType
) -> None:
    group, mods, bob = tg.fake.group("Lab"), tg.fake.group("Mods"), tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, f"@atelier_bot alert {mods.id}")

    assert await outcome(warden) is None
    (alert,) = tg.fake.bot_messages(mods)
    assert alert["text"] == "alert: Bob <b>rang</b> the bell"  # escaped, so shown as is
    assert "&lt;b&gt;" in alert["html"]
    assert "reply_to_message" not in alert  # it answers nobody
    (row,) = alert["reply_markup"]["inline_keyboard"]
    assert [button["callback_data"] for button in row] == ["warden:whoami:x"]
    assert tg.fake.bot_messages(group) == []


async def test_an_alert_to_an_unknown_chat_is_refused_with_the_reason(
    tg: Tg, warden: ModuleType
) -> None:
    group, bob = tg.fake.group("Lab"), tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, "@atelier_bot alert -42")

    error = await outcome(warden)
    assert isinstance(error, PlatformError)
    assert str(error) == "Telegram refused to post to chat -42: Chat not found"
