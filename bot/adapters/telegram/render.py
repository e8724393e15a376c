"""The shared renderer's ``Target`` on Telegram: messages, edits, photos and keyboards.

``bot.render.Reply`` decides what to write and when; this module says it in Bot API
calls: HTML text (``translate.to_html``), ``editMessageText`` (keeping the inline
keyboard, which an edit without one would drop), photos up to Telegram's photo limit and
documents beyond it, inline keyboards whose ``callback_data`` fits Telegram's 64 bytes.
Telegram cannot add a file to a sent text message: a message that gets files is replaced
by a new one, and later edits follow it. Flood control is PTB's ``AIORateLimiter``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Hashable, Sequence
from functools import partial
from typing import Any, TypeVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    ReplyParameters,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError, TimedOut

from bot.render import KEEP, Keep, Upload
from core.events import Buttons

from .translate import to_html

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_BYTES = 64
PHOTO_BYTES = 10 * 1024 * 1024
_PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_RETRY_DELAYS_S = (0.5, 1.5)
T = TypeVar("T")
_BLANK = "…"  # Telegram refuses empty text; a message that only carries buttons shows this


class TelegramTarget:
    """Where one reply goes: a chat (and topic), answering one message."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        *,
        reply_to: int | None,
        thread_id: int | None,
        upload_limit: int,
        drafts: bool = False,
    ) -> None:
        self._bot = bot
        # Drafts are per private chat and reply; any non-zero id of our choosing.
        self._draft_id: int | None = secrets.randbelow(2**31 - 1) + 1 if drafts else None
        self._chat_id = chat_id
        self._reply_to = reply_to
        self._thread_id = thread_id
        self.key: Hashable = ("chat", chat_id)
        self.upload_limit = upload_limit
        self._moved: dict[int, Message] = {}  # a message replaced by one carrying files
        self._markup: dict[int, InlineKeyboardMarkup | None] = {}

    async def post(
        self, content: str, *, files: Sequence[Upload] = (), buttons: Buttons | None = None
    ) -> Message:
        """Send a message (text, or the files with the text as caption)."""
        if files:
            return await self._send_files(content, files, keyboard(buttons))
        markup = keyboard(buttons)
        sent = await _retrying(
            lambda: self._bot.send_message(
                self._chat_id,
                to_html(content) if content.strip() else _BLANK,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                reply_parameters=self._replying(),
                message_thread_id=self._thread_id,
            )
        )
        self._markup[sent.message_id] = markup
        return sent

    async def edit(
        self,
        message: Message,
        *,
        content: str | Keep | None = KEEP,
        files: Sequence[Upload] | None = None,
        buttons: Buttons | Keep | None = KEEP,
    ) -> None:
        """Edit a sent message; one that gets files is replaced by a new one."""
        current = self._current(message)
        markup = self._markup.get(current.message_id)
        if not isinstance(buttons, Keep):
            markup = keyboard(buttons)
        if files:
            text = "" if isinstance(content, Keep) or content is None else content
            replacement = await self._send_files(text, files, markup)
            await self._quietly(lambda: self._bot.delete_message(self._chat_id, current.message_id))
            self._moved[current.message_id] = replacement
            return
        if not isinstance(content, Keep):
            await self._edit_text(current, content or _BLANK, markup)
        elif not isinstance(buttons, Keep):
            await self._quietly(
                lambda: self._bot.edit_message_reply_markup(
                    self._chat_id, current.message_id, reply_markup=markup
                )
            )
        self._markup[current.message_id] = markup

    async def draft(self, content: str) -> bool:
        """Stream ``content`` as a message draft (private chats only; Bot API 9.3).

        False when drafts do not work here, and from then on for this reply: the renderer
        then posts and edits instead."""
        if self._draft_id is None:
            return False
        try:
            await self._bot.send_message_draft(
                self._chat_id, self._draft_id, text=to_html(content), parse_mode=ParseMode.HTML
            )
        except TelegramError as exc:
            log.info("telegram: drafts unavailable in %s: %s", self._chat_id, exc)
            self._draft_id = None
            return False
        return True

    async def delete(self, message: Message) -> None:
        """Delete a sent message (gone already: nothing to do)."""
        current = self._current(message)
        await self._quietly(lambda: self._bot.delete_message(self._chat_id, current.message_id))

    async def error(self, message: str, placeholder: Message | None) -> None:
        """An error is a visible reply (Telegram has no private replies in groups)."""
        text = f"⚠️ {message}"[:MESSAGE_LIMIT]
        if placeholder is not None:
            await self.edit(placeholder, content=text, buttons=None)
        else:
            await self.post(text)

    async def empty(self) -> None:
        """Nothing to do: the message simply got no answer."""

    # ---- internals -----------------------------------------------------------------

    def _current(self, message: Message) -> Message:
        while message.message_id in self._moved:
            message = self._moved[message.message_id]
        return message

    def _replying(self) -> ReplyParameters | None:
        if self._reply_to is None:
            return None
        return ReplyParameters(self._reply_to, allow_sending_without_reply=True)

    async def _edit_text(
        self, message: Message, content: str, markup: InlineKeyboardMarkup | None
    ) -> None:
        if message.photo or message.document:
            call: Callable[[], Awaitable[object]] = partial(
                self._bot.edit_message_caption,
                self._chat_id,
                message.message_id,
                caption=to_html(content[:CAPTION_LIMIT]),
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
        else:
            call = partial(
                self._bot.edit_message_text,
                to_html(content),
                self._chat_id,
                message.message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
        await self._quietly(call)

    async def _send_files(
        self, content: str, files: Sequence[Upload], markup: InlineKeyboardMarkup | None
    ) -> Message:
        """Each file as a photo (images within the photo limit) or a document; the text
        is the first one's caption, the buttons go on the last."""
        sent: Message | None = None
        for index, upload in enumerate(files):
            data = upload.data if upload.data is not None else await _read(upload)
            caption = to_html(content[:CAPTION_LIMIT]) if index == 0 and content else None
            last = index == len(files) - 1
            fields: dict[str, Any] = {
                "caption": caption,
                "parse_mode": ParseMode.HTML,
                "reply_markup": markup if last else None,
                "reply_parameters": self._replying(),
                "message_thread_id": self._thread_id,
            }
            if _is_photo(upload, data):
                try:
                    await self._action(ChatAction.UPLOAD_PHOTO)
                    photo = InputFile(data, filename=upload.filename)
                    sent = await _retrying(
                        partial(self._bot.send_photo, self._chat_id, photo, **fields)
                    )
                    continue
                except BadRequest as exc:  # e.g. dimensions Telegram will not take as a photo
                    log.info("telegram: %s sent as a document: %s", upload.filename, exc)
            await self._action(ChatAction.UPLOAD_DOCUMENT)
            document = InputFile(data, filename=upload.filename)
            sent = await _retrying(
                partial(self._bot.send_document, self._chat_id, document, **fields)
            )
        assert sent is not None
        self._markup[sent.message_id] = markup
        return sent

    async def _quietly(self, call: Callable[[], Awaitable[object]]) -> None:
        """An edit or delete; "not modified" and "not found" are not failures."""
        try:
            await _retrying(call)
        except BadRequest as exc:
            text = str(exc).lower()
            if "not modified" in text or "not found" in text:
                return
            raise

    async def _action(self, action: str) -> None:
        try:
            await self._bot.send_chat_action(self._chat_id, action, self._thread_id)
        except TelegramError as exc:
            log.debug("telegram: chat action failed: %s", exc)


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, again after a network failure or a server error (5xx), twice at most.

    Not after a timeout: the request may have arrived, and a message must not come twice.
    (429s are PTB's ``AIORateLimiter``'s, with the wait Telegram asks for.)"""
    for delay in _RETRY_DELAYS_S:
        try:
            return await call()
        except TimedOut:
            raise
        except NetworkError as exc:
            if isinstance(exc, BadRequest | Forbidden):
                raise
            log.info("telegram: %s; trying again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
    return await call()


def keyboard(buttons: Buttons | None) -> InlineKeyboardMarkup | None:
    """One row of inline buttons; a button whose data Telegram would refuse is left out."""
    if buttons is None:
        return None
    row = []
    for button in buttons.buttons:
        if not 1 <= len(button.custom_id.encode()) <= CALLBACK_DATA_BYTES:
            log.warning("telegram: button %r left out: its data is over 64 bytes", button.label)
            continue
        row.append(InlineKeyboardButton(button.label[:64], callback_data=button.custom_id))
    return InlineKeyboardMarkup([row]) if row else None


def _is_photo(upload: Upload, data: bytes) -> bool:
    return upload.filename.lower().endswith(_PHOTO_SUFFIXES) and len(data) <= PHOTO_BYTES


async def _read(upload: Upload) -> bytes:
    assert upload.path is not None
    return await asyncio.to_thread(upload.path.read_bytes)
