"""Moderation in the chat room (an in-memory platform that deletes and posts through the
adapter port): it reads every message in a server where it is on, also those not said
to the bot, and acts through the platform."""

from __future__ import annotations

import pytest

from tests.chatroom.adapter import BOT, ChatRoom

pytestmark = pytest.mark.asyncio


async def _moderated(room: ChatRoom, action: str) -> None:
    assert await room.say("boss", "general", "/plugins enable moderation", admin=True) == [
        "Plugin moderation is now enabled in this server."
    ]
    done = await room.say("boss", "general", f"/mod policy profanity 0.5 {action}", admin=True)
    assert done == [f"profanity: from score 0.5 → {action}."], done
    await room.say("boss", "general", "/plugins config moderation alert_channel mods", admin=True)


async def test_abuse_not_said_to_the_bot_is_deleted_and_the_moderators_alerted(
    room: ChatRoom,
) -> None:
    await _moderated(room, "delete")
    said = room.send("s1", "general", "ann", "you are all fucking morons")
    assert room.client is not None
    await room.client(said)  # (not room.say: the message is gone before it looks)
    assert room.find(said.id) is None
    [notice] = [m for m in room.messages if m.channel == "general" and m.author == BOT][-1:]
    assert notice.text == (
        "error: Your message was removed: it was flagged for profanity: a listed word."
    ), notice
    [alert] = [m for m in room.messages if m.channel == "mods"]
    assert alert.author == BOT and "'you are all fucking morons'" in alert.text, alert.text
    assert "Action: delete." in alert.text, alert.text


async def test_a_blocked_message_not_said_to_the_bot_is_only_logged(room: ChatRoom) -> None:
    await _moderated(room, "block")
    assert await room.say("ann", "general", "what a shitty game") == []  # no noise
    assert [m.text for m in room.messages if m.author == "ann"] == ["what a shitty game"]
    log = await room.say("boss", "general", "/mod log", admin=True)
    assert "→ block: 'what a shitty game'" in log[0], log


async def test_fine_chat_is_left_alone_and_another_server_is_not_moderated(
    room: ChatRoom,
) -> None:
    await _moderated(room, "delete")
    assert await room.say("ann", "general", "kill the process and restart it") == []
    assert await room.say("ann", "general", "fuck yeah", server="s2") == []
    assert [m.text for m in room.messages if m.author == "ann"] == [
        "kill the process and restart it",
        "fuck yeah",
    ]
