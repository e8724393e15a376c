"""python-telegram-bot objects → platform-neutral events, and reply text → Telegram HTML.

Pure functions, no I/O: who sent something and where (each chat is a server of its own;
a forum topic is a channel of its chat), the facts of how a message reached the bot,
commands addressed to this bot (``/imagine@thisbot``) and not another, documents as lazy
attachments, and the HTML a reply is sent as. Nothing here decides whether the bot
answers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable

from telegram import Chat, Message, MessageEntity, User

from core.events import Addressing, Attachment, CommandEvent, MessageEvent, Origin

PLATFORM = "telegram"
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?=\s|$)")
_FENCE = re.compile(r"```([A-Za-z0-9_+#.-]{0,20})[ \t]*\n(.*?)(?:\n```|\Z)", re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")


def origin_of(chat: Chat, user: User, *, thread_id: int | None, is_admin: bool) -> Origin:
    """The origin of an update: the chat is the server (and, without topics, the channel)."""
    chat_id = str(chat.id)
    private = chat.type == Chat.PRIVATE
    return Origin(
        platform=PLATFORM,
        server_id=chat_id,
        channel_id=f"{chat_id}:{thread_id}" if thread_id else chat_id,
        user_id=str(user.id),
        user_name=user.full_name or user.username or str(user.id),
        server_name="Private chat" if private else (chat.title or chat_id),
        channel_name="private" if private else (chat.title or chat_id),
        is_admin=is_admin,
    )


def addressing(message: Message, bot: User, listed: set[str]) -> Addressing:
    """The facts of how ``message`` reached the bot."""
    replied = message.reply_to_message
    return Addressing(
        direct=message.chat.type == Chat.PRIVATE,
        mentions_bot=mentions(message, bot),
        replies_to_bot=replied is not None
        and replied.from_user is not None
        and replied.from_user.id == bot.id,
        listed_channel=str(message.chat.id) in listed,
    )


def mentions(message: Message, bot: User) -> bool:
    """Whether the text names the bot (``@botname``, or a mention of its user)."""
    name = f"@{bot.username}".lower() if bot.username else None
    for entity, text in message.parse_entities().items():
        if entity.type == MessageEntity.MENTION and name and text.lower() == name:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot.id:
            return True
    for entity, text in message.parse_caption_entities().items():
        if entity.type == MessageEntity.MENTION and name and text.lower() == name:
            return True
    return False


def strip_mention(text: str, bot: User) -> str:
    """The text without the bot's ``@username``."""
    if not bot.username:
        return text.strip()
    return re.sub(rf"@{re.escape(bot.username)}\b", " ", text, flags=re.IGNORECASE).strip()


def command_of(text: str, bot_username: str | None) -> tuple[str, str] | None:
    """``(name, rest)`` of a command line for this bot; None when the text is no command
    or a command for another bot (``/imagine@otherbot``)."""
    found = _COMMAND.match(text)
    if found is None:
        return None
    target = found.group(2)
    if target and (bot_username is None or target.lower() != bot_username.lower()):
        return None
    return found.group(1).lower(), text[found.end() :].strip()


def event_of(
    message: Message,
    bot: User,
    origin: Origin,
    listed: set[str],
    attachments: tuple[Attachment, ...],
) -> CommandEvent | MessageEvent | None:
    """The core's event for a text or document message; None for a command to another
    bot."""
    text = message.text or message.caption or ""
    if text.startswith("/"):
        found = command_of(text, bot.username)
        if found is None:
            return None
        name, rest = found
        return CommandEvent(origin, name, rest, attachments=attachments)
    return MessageEvent(
        origin,
        strip_mention(text, bot),
        message_id=str(message.message_id),
        attachments=attachments,
        addressing=addressing(message, bot, listed),
    )


def document_attachment(
    message: Message, fetch: Callable[[str], Awaitable[bytes]]
) -> tuple[Attachment, ...]:
    """A sent document as a lazy attachment (downloaded only when a plugin reads it)."""
    document = message.document
    if document is None:
        return ()
    file_id = document.file_id

    async def download() -> bytes:
        return await fetch(file_id)

    return (
        Attachment(
            document.file_name or "document",
            document.mime_type or "application/octet-stream",
            document.file_size or 0,
            fetch=download,
        ),
    )


def to_html(text: str) -> str:
    """Reply text as Telegram HTML: everything escaped; fenced code as ``<pre>``, inline
    code as ``<code>``. Fences are balanced per message (the splitter closes and reopens
    them), so every message parses on its own."""
    out: list[str] = []
    pos = 0
    for block in _FENCE.finditer(text):
        out.append(_inline(text[pos : block.start()]))
        language, code = block.group(1), block.group(2)
        attr = f' class="language-{html.escape(language)}"' if language else ""
        out.append(f"<pre><code{attr}>{html.escape(code, quote=False)}</code></pre>")
        pos = block.end()
    out.append(_inline(text[pos:]))
    return "".join(out)


def _inline(text: str) -> str:
    pieces = _INLINE.split(text)
    return "".join(
        f"<code>{html.escape(piece, quote=False)}</code>"
        if odd
        else html.escape(piece, quote=False)
        for odd, piece in ((i % 2 == 1, p) for i, p in enumerate(pieces))
    )
