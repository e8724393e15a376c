"""Stories of the Telegram adapter: the real python-telegram-bot against a fake Bot API.

"This arrives in a chat → the bot sends this", for private chats and groups: streaming,
commands and their menus, admins, images and keyboards, long answers, flood control,
bad input and a group that becomes a supergroup.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.adapter import Limits
from tests.adapters_telegram.conftest import Tg
from tests.fakes import script

ANSWER = "Streaming answers arrive as one message that grows until it is whole."


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in messages]


def _menu(tg: Tg, chat: Any) -> set[str]:
    return {c["command"] for c in tg.fake.commands_for(chat) or []}


async def test_a_private_message_streams_as_a_draft_and_arrives_as_one_message(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)
    tg.model.messages = script(ANSWER)
    tg.model.pause = 0.03  # words trickle in, as from a real model

    await tg.fake.send_text(chat, ada, "tell me about streaming")

    await tg.fake.until(lambda: _texts(tg.fake.bot_messages(chat)) == [ANSWER])
    (message,) = tg.fake.bot_messages(chat)
    drafts = [d["text"] for d in tg.fake.drafts(chat)]
    assert len(drafts) >= 2 and all(ANSWER.startswith(d.strip()) for d in drafts)
    assert tg.fake.edits_of(chat, message["message_id"]) == 0  # posted once, whole
    assert "typing" in tg.fake.chat_actions(chat)


async def test_a_group_reply_streams_by_editing_one_message(tg: Tg) -> None:
    group = tg.fake.group("Lab")
    bob = tg.fake.user("Bob")
    tg.model.messages = script(ANSWER)
    tg.model.pause = 0.03

    await tg.fake.send_text(group, bob, "@atelier_bot tell me about streaming")

    await tg.fake.until(lambda: _texts(tg.fake.bot_messages(group)) == [ANSWER])
    (message,) = tg.fake.bot_messages(group)
    assert tg.fake.edits_of(group, message["message_id"]) >= 1
    assert tg.fake.drafts(group) == []


async def test_a_reply_full_of_html_characters_arrives_intact(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)
    hostile = "if a < b && c > d: print('<b>not bold</b>') `x<y`"
    tg.model.messages = script(hostile + "\n```py\nx = 1 < 2\n```")

    await tg.fake.send_text(chat, ada, "code please")

    await tg.fake.until(lambda: tg.fake.bot_messages(chat))
    await tg.fake.until(lambda: "x = 1 < 2" in _texts(tg.fake.bot_messages(chat))[0])
    shown = _texts(tg.fake.bot_messages(chat))[0]
    assert shown.startswith("if a < b && c > d: print('<b>not bold</b>') x<y")
    assert "<pre>" in tg.fake.bot_messages(chat)[0]["html"]


async def test_in_a_group_only_mentions_replies_and_commands_are_answered(tg: Tg) -> None:
    group = tg.fake.group("Lab")
    bob = tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, "just chatting with people")
    await tg.fake.send_text(group, bob, "@atelier_bot hello there")

    await tg.fake.until(lambda: tg.fake.bot_messages(group))
    await tg.fake.until(lambda: _texts(tg.fake.bot_messages(group)) == ["Hello from Telegram."])
    assert len(tg.model.seen) == 1
    assert "atelier_bot" not in str(tg.model.seen[0][-1].content)  # the mention is removed


async def test_commands_for_another_bot_and_non_text_are_ignored(tg: Tg) -> None:
    group = tg.fake.group("Lab")
    bob = tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, "/help@otherbot")
    for kind in ("sticker", "voice", "location", "poll"):
        await tg.fake.send_other(group, bob, kind)
    await tg.fake.send_text(group, bob, "/help@atelier_bot")

    await tg.fake.until(lambda: tg.fake.bot_messages(group))
    (answer,) = _texts(tg.fake.bot_messages(group))
    assert answer.startswith("Commands here:")


async def test_a_malformed_option_gets_the_usage(tg: Tg) -> None:
    group = tg.fake.group("Lab")
    bob = tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, '/imagine "a red apple" --steps many')

    await tg.fake.until(lambda: tg.fake.bot_messages(group))
    (answer,) = _texts(tg.fake.bot_messages(group))
    assert answer == "⚠️ option steps: must be a whole number, got 'many'"


async def test_imagine_in_a_group_draws_a_photo_with_a_keyboard_and_a_press_rerolls(
    tg: Tg,
) -> None:
    group = tg.fake.group("Lab")
    bob = tg.fake.user("Bob")

    await tg.fake.send_text(group, bob, '/imagine "a red apple" --steps 4 --seed 7')

    def photos() -> list[dict[str, Any]]:
        return [m for m in tg.fake.bot_messages(group) if m.get("photo")]

    await tg.fake.until(photos)
    await tg.fake.until(
        lambda: any("reply_markup" in m and "reroll" in str(m) for m in tg.fake.bot_messages(group))
    )
    keyed = next(m for m in tg.fake.bot_messages(group) if "reroll" in str(m.get("reply_markup")))
    reroll = next(
        b["callback_data"]
        for row in keyed["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].startswith("imagine:reroll:")
    )
    assert len(reroll.encode()) <= 64
    assert tg.images.submitted[0].seed == 7

    pressed = await tg.fake.press(group, bob, keyed["message_id"], reroll)

    await tg.fake.until(lambda: len(photos()) == 2)
    assert pressed in tg.fake.answered_callbacks()
    assert len(tg.images.submitted) == 2 and tg.images.submitted[1].seed != 7


async def test_a_button_of_a_plugin_disabled_since_is_answered_and_explained(tg: Tg) -> None:
    chat = tg.fake.private_chat(ada := tg.fake.user("Ada"))
    await tg.fake.send_text(chat, ada, "/imagine a cat")
    await tg.fake.until(lambda: any("reroll" in str(m) for m in tg.fake.bot_messages(chat)))
    keyed = next(m for m in tg.fake.bot_messages(chat) if "reroll" in str(m.get("reply_markup")))
    data = next(
        b["callback_data"]
        for row in keyed["reply_markup"]["inline_keyboard"]
        for b in row
        if "reroll" in b["callback_data"]
    )
    await tg.fake.send_text(chat, ada, "/plugins disable imagine")
    await tg.fake.until(lambda: "now disabled" in _texts(tg.fake.bot_messages(chat))[-1])

    pressed = await tg.fake.press(chat, ada, keyed["message_id"], data)

    await tg.fake.until(lambda: pressed in tg.fake.answered_callbacks())
    await tg.fake.until(lambda: "no longer works" in _texts(tg.fake.bot_messages(chat))[-1])
    assert len(tg.images.submitted) == 1


async def test_admins_toggle_plugins_per_chat_and_the_menus_follow(tg: Tg) -> None:
    lab, other = tg.fake.group("Lab"), tg.fake.group("Other")
    alice, bob = tg.fake.user("Alice"), tg.fake.user("Bob")
    tg.fake.make_admin(lab, alice)
    await tg.fake.send_text(other, bob, "/help")
    await tg.fake.until(lambda: "imagine" in _menu(tg, other))

    await tg.fake.send_text(lab, bob, "/plugins disable imagine")
    await tg.fake.until(lambda: tg.fake.bot_messages(lab))
    refused = _texts(tg.fake.bot_messages(lab))[-1]
    await tg.fake.send_text(lab, alice, "/plugins disable imagine")
    await tg.fake.until(lambda: len(tg.fake.bot_messages(lab)) == 2)

    assert refused == "⚠️ Only server admins may use /plugins disable."
    assert _texts(tg.fake.bot_messages(lab))[-1] == "Plugin imagine is now disabled in this server."
    await tg.fake.until(lambda: tg.fake.commands_for(lab) and "imagine" not in _menu(tg, lab))
    assert "plugins" in _menu(tg, lab)
    assert "imagine" in _menu(tg, other)
    await tg.fake.send_text(lab, bob, "@atelier_bot draw me a picture")
    await tg.fake.until(lambda: len(tg.fake.bot_messages(lab)) == 3)
    assert "generate_image" not in tg.model.offered[-1]


async def test_a_private_chat_is_administered_by_its_user(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)

    await tg.fake.send_text(chat, ada, "/plugins disable calculator")

    await tg.fake.until(lambda: tg.fake.bot_messages(chat))
    assert _texts(tg.fake.bot_messages(chat)) == [
        "Plugin calculator is now disabled in this server."
    ]


async def test_a_429_is_waited_out_and_the_message_still_arrives(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)
    tg.fake.fail_next("sendMessage", status=429, retry_after=1)

    await tg.fake.send_text(chat, ada, "/help")

    await tg.fake.until(lambda: tg.fake.bot_messages(chat), within=15)
    assert _texts(tg.fake.bot_messages(chat))[0].startswith("Commands here:")
    assert len(tg.fake.calls_of("sendMessage")) >= 2


async def test_a_ten_thousand_character_answer_arrives_as_three_messages(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)
    words = " ".join(f"word{n:04d}" for n in range(1100))  # 10,999 characters
    tg.model.messages = script(words)

    await tg.fake.send_text(chat, ada, "write a lot")

    await tg.fake.until(
        lambda: " ".join(_texts(tg.fake.bot_messages(chat))).split() == words.split(), within=15
    )
    messages = _texts(tg.fake.bot_messages(chat))
    assert len(messages) == 3
    assert all(len(text) <= Limits(4096).message_chars for text in messages)


async def test_a_document_becomes_an_attachment_capped_by_the_core(tg: Tg) -> None:
    from bot.plugins import Source

    tg.app.plugins.sources["gate"] = Source("gate", "tests.core.gate_plugin")
    await tg.app.plugins.load("gate")
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)

    await tg.fake.send_document(chat, ada, "notes.txt", b"hello telegram", caption="/upload")

    await tg.fake.until(lambda: tg.fake.bot_messages(chat))
    assert _texts(tg.fake.bot_messages(chat)) == ["notes.txt: 14 bytes"]


async def test_a_group_that_becomes_a_supergroup_keeps_its_settings(tg: Tg) -> None:
    group = tg.fake.group("Lab", supergroup=False)
    alice = tg.fake.user("Alice")
    tg.fake.make_admin(group, alice)
    await tg.fake.send_text(group, alice, "/plugins disable calculator")
    await tg.fake.until(lambda: tg.fake.bot_messages(group))

    supergroup = await tg.fake.migrate(group)
    tg.fake.make_admin(supergroup, alice)
    await tg.fake.send_text(supergroup, alice, "/calc 1+1")

    await tg.fake.until(lambda: tg.fake.bot_messages(supergroup))
    assert "disabled in this server" in _texts(tg.fake.bot_messages(supergroup))[0]


async def test_where_drafts_fail_the_reply_falls_back_to_editing(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)
    tg.fake.fail_next("sendMessageDraft", status=400, description="Bad Request: not supported")
    tg.model.messages = script(ANSWER)
    tg.model.pause = 0.03

    await tg.fake.send_text(chat, ada, "tell me about streaming")

    await tg.fake.until(lambda: _texts(tg.fake.bot_messages(chat)) == [ANSWER])
    assert len(tg.fake.calls_of("sendMessageDraft")) == 1  # tried once, then not again


async def test_a_server_error_is_retried_and_the_message_still_arrives(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)
    tg.fake.fail_next("sendMessage", status=502, retry_after=None)

    await tg.fake.send_text(chat, ada, "/help")

    await tg.fake.until(lambda: tg.fake.bot_messages(chat), within=15)
    assert _texts(tg.fake.bot_messages(chat))[0].startswith("Commands here:")
    assert len(tg.fake.calls_of("sendMessage")) == 2


async def test_a_document_over_the_cap_is_refused_without_a_download(tg: Tg) -> None:
    from bot.plugins import Source

    tg.app.services.settings.limits.max_attachment_mb = 0.001  # about 1 KB
    tg.app.plugins.sources["gate"] = Source("gate", "tests.core.gate_plugin")
    await tg.app.plugins.load("gate")
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)

    await tg.fake.send_document(chat, ada, "big.bin", b"x" * 5000, caption="/upload")

    await tg.fake.until(lambda: tg.fake.bot_messages(chat))
    assert _texts(tg.fake.bot_messages(chat)) == [
        "⚠️ The file 'big.bin' is 5 KB; the limit is 1 KB."
    ]
    assert not tg.fake.calls_of("getFile")


async def test_an_oversize_message_gets_a_polite_refusal(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)

    await tg.fake.send_text(chat, ada, "x" * 4096)

    await tg.fake.until(lambda: tg.fake.bot_messages(chat))
    assert _texts(tg.fake.bot_messages(chat)) == [
        "⚠️ Your message is 4096 characters long; the limit is 4000."
    ]
    assert tg.model.seen == []


async def test_a_reply_to_the_bot_and_a_chat_chat_are_answered_in_groups(tg: Tg) -> None:
    group = tg.fake.group("Lab")
    alice, bob = tg.fake.user("Alice"), tg.fake.user("Bob")
    tg.fake.make_admin(group, alice)
    await tg.fake.send_text(group, bob, "/help")
    await tg.fake.until(lambda: tg.fake.bot_messages(group))
    help_id = tg.fake.bot_messages(group)[0]["message_id"]

    await tg.fake.send_text(group, bob, "thanks, and what else?", reply_to_bot=help_id)
    await tg.fake.until(lambda: len(tg.fake.bot_messages(group)) == 2)
    await tg.fake.send_text(group, bob, "nobody asked you")  # not answered yet
    await tg.fake.send_text(group, alice, "/channel chat on")
    await tg.fake.until(lambda: len(tg.fake.bot_messages(group)) == 3)
    await tg.fake.send_text(group, bob, "now you hear everything")
    await tg.fake.until(lambda: len(tg.fake.bot_messages(group)) == 4)

    assert _texts(tg.fake.bot_messages(group))[1:] == [
        "Hello from Telegram.",
        "I will answer every message in this channel.",
        "Hello from Telegram.",
    ]
    assert len(tg.model.seen) == 2


@pytest.mark.model
async def test_a_document_captioned_kb_add_goes_into_the_knowledge_base(tg: Tg) -> None:
    ada = tg.fake.user("Ada")
    chat = tg.fake.private_chat(ada)  # a private chat's user is its admin
    text = b"# Boathouse\n\nThe boathouse key hangs in the blue cabinet.\n"

    await tg.fake.send_document(chat, ada, "boathouse.md", text, caption="/kb add")
    await tg.fake.until(lambda: tg.fake.bot_messages(chat), within=90)  # loads the embedder
    assert _texts(tg.fake.bot_messages(chat)) == ["Added “boathouse.md”: 1 passage."]

    await tg.fake.send_text(chat, ada, "/kb search where is the key")
    await tg.fake.until(lambda: len(tg.fake.bot_messages(chat)) == 2, within=30)
    found = _texts(tg.fake.bot_messages(chat))[1]
    assert found.startswith("[1] “boathouse.md — Boathouse”"), found
