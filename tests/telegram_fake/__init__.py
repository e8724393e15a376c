"""A fake Telegram Bot API on 127.0.0.1 that the real python-telegram-bot (v22) talks to.

One aiohttp server answers ``POST /bot<token>/<method>`` the way Telegram does: form,
multipart (files) or JSON parameters in; ``{"ok": true, "result": …}`` or
``{"ok": false, "error_code": …, "description": …, "parameters": …}`` out; files download
from ``GET /file/bot<token>/<file_path>``. Tests build chats, inject what users do, and
read back what the bot did. It never reaches beyond loopback; every wait is bounded.

Usage::

    async with FakeBotAPI() as fake:                      # or: await fake.start() / close()
        alice = fake.user("Alice", username="alice")
        dm = fake.private_chat(alice)
        app = (
            Application.builder().token(fake.token)
            .base_url(fake.base_url).base_file_url(fake.base_file_url).build()
        )
        ...                                               # start polling
        await fake.send_text(dm, alice, "/start")
        await fake.until(lambda: fake.bot_messages(dm))
        assert fake.bot_messages(dm)[0]["text"] == "Hello Alice"

Telegram's rules are enforced without asking: text 1..4096 characters after entity parsing
(``parse_mode=HTML`` parsed with ``html.parser``; only Telegram's tags; whitespace trimmed at
both ends), captions ≤ 1024, ``callback_data`` 1..64 bytes, uploaded photos must be images,
"message is not modified" on identical edits, "chat not found" for unknown chats,
"message to delete not found", ``restrictChatMember`` only in supergroups, never of an
administrator, and for ever when ``until_date`` is under 30 s or over 366 days ahead.
``Markdown``/``MarkdownV2`` texts are accepted but not parsed (stored as sent).

Cheat sheet (``FakeBotAPI``):

* world: ``token``, ``bot_id``, ``bot_username``, ``url``, ``base_url``, ``base_file_url``,
  ``user(first_name, username=)``, ``private_chat(user)``, ``group(title, supergroup=True)``,
  ``channel(title)``, ``make_admin(chat, user)``, ``demote_bot(chat)``;
* inject: ``send_text(chat, user, text, reply_to_bot=, entities=)``,
  ``send_document(chat, user, filename, data, mime=, caption=)``,
  ``send_other(chat, user, "sticker"|"voice"|"location"|"poll")``,
  ``edit_text(chat, user, message_id, text)``, ``channel_post(chat, text)``,
  ``press(chat, user, message_id, data) -> query id``, ``migrate(group, by=) -> Chat``,
  ``set_webhook_target(url, secret)``; each returns the Message JSON unless noted;
* faults: ``fail_next(method, status=429, retry_after=1, times=1, description="")``,
  ``block(chat)`` / ``unblock(chat)``;
* read: ``calls`` ((method, params) with files as ``{"filename", "size"}``),
  ``call_statuses``, ``calls_of(method)``, ``bot_messages(chat)`` (with ``html`` when
  HTML was sent), ``edits_of(chat, message_id)``, ``commands_for(chat|None)``,
  ``answered_callbacks()``, ``chat_actions(chat)``, ``drafts(chat)``, ``deleted(chat)``
  (message ids), ``restriction(chat, user)`` (``until_date``, ``forever``, ``permissions``),
  ``webhook_deliveries`` ((update_id, HTTP status)), ``polling`` (a long poll is parked),
  ``until(check, within=10.0)``.

Calls are logged when answered, so a long poll shows up when it returns; when PTB's
``Updater`` stops, it cancels its parked ``getUpdates`` and sends a final one, which ends the
parked one with 409 Conflict (as Telegram does) — expect that in ``call_statuses``.

PTB note: ``RetryAfter.retry_after`` (and other durations) emit ``PTBDeprecationWarning``
unless ``PTB_TIMEDELTA=1`` is set — under ``filterwarnings = error`` that warning replaces
the ``RetryAfter`` itself, so stories set the variable (then it is a ``timedelta``).
"""

from .objects import ApiError, Chat, User
from .server import FakeBotAPI

__all__ = ["ApiError", "Chat", "FakeBotAPI", "User"]
