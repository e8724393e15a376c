"""The fake Bot API, driven by the real ``telegram.Bot``: what Telegram does happens here."""

from __future__ import annotations

import asyncio
import datetime as dtm
import io
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from telegram import (
    Bot,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter

from tests.telegram_fake import FakeBotAPI


@pytest.fixture(autouse=True)
def _durations_as_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns (PTBDeprecationWarning) on every duration it hands out as an int —
    ``RetryAfter.__init__`` reads its own ``retry_after`` — unless durations are opted into
    ``timedelta``; under ``filterwarnings = error`` that warning would replace RetryAfter."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    """A started fake Bot API."""
    async with FakeBotAPI() as fake:
        yield fake


@pytest.fixture
async def bot(fake: FakeBotAPI) -> AsyncIterator[Bot]:
    """A real, initialized PTB ``Bot`` pointed at the fake."""
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot:
        yield bot


def _png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


async def test_get_me_returns_the_bot(fake: FakeBotAPI, bot: Bot) -> None:
    me = await bot.get_me()

    assert (me.id, me.username, me.is_bot) == (123456, "atelier_bot", True)
    assert fake.bot_id == 123456 and bot.username == "atelier_bot"
    assert [name for name, _ in fake.calls] == ["getMe", "getMe"]  # initialize() + ours


async def test_html_message_is_stored_as_plain_text_with_its_html(
    fake: FakeBotAPI, bot: Bot
) -> None:
    alice = fake.user("Alice", username="alice")
    dm = fake.private_chat(alice)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
    html = "<b>Hello</b> <i>Alice</i> &amp; co\n"

    sent = await bot.send_message(dm.id, html, parse_mode="HTML", reply_markup=keyboard)

    assert sent.text == "Hello Alice & co" and sent.from_user is not None
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        (MessageEntity.BOLD, 0, 5),
        (MessageEntity.ITALIC, 6, 5),
    ]
    [stored] = fake.bot_messages(dm)
    assert stored["text"] == "Hello Alice & co" and stored["html"] == html
    assert stored["reply_markup"] == keyboard.to_dict()
    assert fake.calls_of("sendMessage")[0]["chat_id"] == dm.id  # JSON-decoded form field

    with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "div"'):
        await bot.send_message(dm.id, "<div>no</div>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't find end tag"):
        await bot.send_message(dm.id, "<b>open", parse_mode="HTML")


async def test_identical_edit_is_refused_as_not_modified(fake: FakeBotAPI, bot: Bot) -> None:
    alice = fake.user("Alice")
    dm = fake.private_chat(alice)
    sent = await bot.send_message(dm.id, "draft")
    await bot.edit_message_text("final", chat_id=dm.id, message_id=sent.message_id)

    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("final", chat_id=dm.id, message_id=sent.message_id)

    assert fake.edits_of(dm, sent.message_id) == 1
    assert [m["text"] for m in fake.bot_messages(dm)] == ["final"]


async def test_telegram_limits_are_enforced(fake: FakeBotAPI, bot: Bot) -> None:
    dm = fake.private_chat(fake.user("Alice"))

    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(dm.id, "x" * 5000)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(dm.id, "<b> </b>", parse_mode="HTML")
    too_big = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(dm.id, "pick", reply_markup=too_big)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "anyone?")

    await bot.send_message(dm.id, "x" * 4096)
    assert fake.call_statuses == [200, 400, 400, 400, 400, 200]


async def test_rate_limit_raises_retry_after_then_the_send_goes_through(
    fake: FakeBotAPI, bot: Bot
) -> None:
    dm = fake.private_chat(fake.user("Alice"))
    fake.fail_next("sendMessage", status=429, retry_after=1)

    with pytest.raises(RetryAfter) as limited:
        await bot.send_message(dm.id, "hi")
    await bot.send_message(dm.id, "hi")

    assert limited.value.retry_after == dtm.timedelta(seconds=1)
    assert fake.call_statuses[-2:] == [429, 200]
    assert len(fake.calls_of("sendMessage")) == 2 and len(fake.bot_messages(dm)) == 1


async def test_uploaded_photo_is_recorded_with_its_size(fake: FakeBotAPI, bot: Bot) -> None:
    dm = fake.private_chat(fake.user("Alice"))
    png = _png(40, 30)

    sent = await bot.send_photo(dm.id, png, caption="a plot", filename="plot.png")

    assert fake.calls_of("sendPhoto")[0]["photo"] == {"filename": "plot.png", "size": len(png)}
    assert (sent.photo[-1].width, sent.photo[-1].height) == (40, 30)
    assert fake.bot_messages(dm)[0]["caption"] == "a plot"
    with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(dm.id, b"not an image")


async def test_get_updates_delivers_injected_messages_and_long_polls(
    fake: FakeBotAPI, bot: Bot
) -> None:
    alice = fake.user("Alice", username="alice")
    dm = fake.private_chat(alice)
    await fake.send_text(dm, alice, "/start@atelier_bot hello")

    [update] = await bot.get_updates(timeout=5)

    assert update.effective_user is not None and update.effective_user.id == alice.id
    assert update.effective_chat is not None and update.effective_chat.id == dm.id
    assert update.message is not None and update.message.text == "/start@atelier_bot hello"
    assert [e.type for e in update.message.entities] == [MessageEntity.BOT_COMMAND]

    poll = asyncio.create_task(bot.get_updates(offset=update.update_id + 1, timeout=5))
    await fake.until(lambda: fake.polling, within=2)  # parked at the server, not answered
    assert not poll.done()
    started = asyncio.get_running_loop().time()
    await fake.send_text(dm, alice, "second")
    [later] = await asyncio.wait_for(poll, 3)
    assert later.message is not None and later.message.text == "second"
    assert asyncio.get_running_loop().time() - started < 2


async def test_user_document_downloads_through_get_file(fake: FakeBotAPI, bot: Bot) -> None:
    alice = fake.user("Alice")
    dm = fake.private_chat(alice)
    await fake.send_document(dm, alice, "notes.txt", b"hello file", "text/plain", "read me")

    [update] = await bot.get_updates()
    assert update.message is not None and update.message.document is not None
    assert update.message.caption == "read me"
    file = await bot.get_file(update.message.document.file_id)

    assert await file.download_as_bytearray() == bytearray(b"hello file")
    assert file.file_path is not None and file.file_path.startswith(fake.base_file_url)


async def test_button_press_is_answered_once(fake: FakeBotAPI, bot: Bot) -> None:
    alice = fake.user("Alice")
    dm = fake.private_chat(alice)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])
    sent = await bot.send_message(dm.id, "ready?", reply_markup=keyboard)

    query_id = await fake.press(dm, alice, sent.message_id, "go")
    [update] = await bot.get_updates()
    assert update.callback_query is not None and update.callback_query.data == "go"
    await update.callback_query.answer("ok")

    assert fake.answered_callbacks() == [query_id]
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)


async def test_migrated_group_and_blocked_chat(fake: FakeBotAPI, bot: Bot) -> None:
    group = fake.group("Lab", supergroup=False)
    supergroup = await fake.migrate(group)

    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(group.id, "hello")
    assert migrated.value.new_chat_id == supergroup.id
    service = [u.message for u in await bot.get_updates() if u.message]
    assert [(m.migrate_to_chat_id, m.migrate_from_chat_id) for m in service] == [
        (supergroup.id, None),
        (None, group.id),
    ]

    dm = fake.private_chat(fake.user("Alice"))
    fake.block(dm)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(dm.id, "still there?")


async def test_delete_message_is_recorded_and_needs_admin_rights_for_others(
    fake: FakeBotAPI, bot: Bot
) -> None:
    group, bob = fake.group("Lab"), fake.user("Bob")
    first = await fake.send_text(group, bob, "spam")
    second = await fake.send_text(group, bob, "more spam")

    assert await bot.delete_message(group.id, first["message_id"])
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(group.id, first["message_id"])
    fake.demote_bot(group)
    with pytest.raises(BadRequest, match="Message can't be deleted"):
        await bot.delete_message(group.id, second["message_id"])

    assert fake.deleted(group) == [first["message_id"]]
    assert (await bot.get_chat_member(group.id, bot.id)).status == "member"


async def test_restrict_chat_member_keeps_the_date_or_makes_it_for_ever(
    fake: FakeBotAPI, bot: Bot
) -> None:
    group, bob, ada = fake.group("Lab"), fake.user("Bob"), fake.user("Ada")
    silenced = ChatPermissions.no_permissions()
    until = int(time.time()) + 600

    assert await bot.restrict_chat_member(group.id, bob.id, silenced, until_date=until)
    assert fake.restriction(group, bob) == {
        "permissions": silenced.to_dict(),
        "until_date": until,
        "forever": False,
    }
    soon = int(time.time()) + 5
    await bot.restrict_chat_member(group.id, bob.id, silenced, until_date=soon)
    assert fake.restriction(group, bob) == {
        "permissions": silenced.to_dict(),
        "until_date": 0,
        "forever": True,
    }
    fake.make_admin(group, ada)
    with pytest.raises(BadRequest, match="User is an administrator"):
        await bot.restrict_chat_member(group.id, ada.id, silenced)
    with pytest.raises(BadRequest, match="only for supergroups"):
        await bot.restrict_chat_member(fake.private_chat(bob).id, bob.id, silenced)
    fake.demote_bot(group)
    with pytest.raises(BadRequest, match="Not enough rights"):
        await bot.restrict_chat_member(group.id, bob.id, silenced)
    assert fake.restriction(group, ada) is None
