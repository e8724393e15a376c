"""What plugins may do on Telegram: delete a message, restrict a member, post to a chat.

``TelegramActions`` is the adapter's ``core.adapter.Actions``, passed with every update it
routes. On Telegram each chat is a server of its own, so a post goes to whichever chat
(``"<chat id>"`` or ``"<chat id>:<topic id>"``) the plugin names — the moderators' chat —
rendered by the shared renderer through ``TelegramTarget``, exactly as replies are (HTML
escaped, inline keyboards). A "timeout" is ``restrictChatMember`` with no permissions
until a date; private chats have nobody to restrict. PTB's errors end here, as
``PlatformError``s with one short line of reason; whether to act is the plugin's business.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from telegram import Bot, ChatPermissions, Message
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.render import Reply, WriteBudget
from core.adapter import Limits
from core.errors import PlatformError
from core.events import Origin, ReplyPart

from .render import TelegramTarget

log = logging.getLogger(__name__)

# Telegram takes a restriction of under 30 s or over 366 days as "forever"; the margin
# keeps a clamped date inside that window by the time Telegram reads it.
SHORTEST_RESTRICTION_S = 30.0
LONGEST_RESTRICTION_S = 366 * 24 * 3600.0
_MARGIN_S = 5.0


class TelegramActions:
    """``core.adapter.Actions`` on one PTB ``Bot`` (see the module docstring)."""

    def __init__(
        self, bot: Bot, capabilities: frozenset[str], limits: Limits, budget: WriteBudget
    ) -> None:
        self.capabilities = capabilities
        self._bot = bot
        self._limits = limits
        self._budget = budget

    async def delete_message(self, origin: Origin, message_id: str) -> None:
        """``deleteMessage`` in ``origin``'s chat (groups: the bot must be an admin who
        may delete messages)."""
        chat_id = _chat_id(origin.server_id)
        message = _number(message_id, "message")
        async with _translated("delete the message"):
            await self._bot.delete_message(chat_id, message)

    async def timeout_user(self, origin: Origin, seconds: float, reason: str) -> None:
        """``restrictChatMember``: ``origin``'s user may send nothing until ``seconds`` from
        now, clamped to what Telegram keeps finite (30 s to 366 days); refused in private
        chats. Telegram records no reason: it goes to the log."""
        chat_id = _chat_id(origin.server_id)
        if chat_id > 0:  # users' ids, and so private chats', are positive; groups' negative
            raise PlatformError("Telegram cannot restrict anyone in a private chat")
        user_id = _number(origin.user_id, "user")
        until = math.ceil(time.time() + restriction_seconds(seconds))
        async with _translated("restrict the member"):
            await self._bot.restrict_chat_member(
                chat_id, user_id, ChatPermissions.no_permissions(), until_date=until
            )
        log.info("telegram: restricted %s in %s until %d: %s", user_id, chat_id, until, reason)

    async def post(self, origin: Origin, channel_id: str, parts: Sequence[ReplyPart]) -> None:
        """Post ``parts`` to the chat (and topic) ``channel_id``, rendered as a reply is."""
        chat_id, _, topic = channel_id.partition(":")
        target = TelegramTarget(
            self._bot,
            _chat_id(chat_id),
            reply_to=None,
            thread_id=_number(topic, "topic") if topic else None,
            upload_limit=self._limits.file_bytes,
        )
        reply: Reply[Message] = Reply(target, self._budget, self._limits)
        async with _translated(f"post to chat {channel_id}"):
            await reply.render(_stream(parts))


def restriction_seconds(seconds: float) -> float:
    """``seconds`` as a restriction Telegram keeps finite: 30 s to 366 days (inside)."""
    if math.isnan(seconds):
        raise PlatformError("a timeout needs a number of seconds")
    shortest = SHORTEST_RESTRICTION_S + _MARGIN_S
    return min(max(seconds, shortest), LONGEST_RESTRICTION_S - _MARGIN_S)


def _chat_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PlatformError(f"{value!r} is no Telegram chat id") from None


def _number(value: str, what: str) -> int:
    if not value.isdigit():
        raise PlatformError(f"{value!r} is no Telegram {what} id")
    return int(value)


async def _stream(parts: Sequence[ReplyPart]) -> AsyncIterator[ReplyPart]:
    for part in parts:
        yield part


@asynccontextmanager
async def _translated(action: str) -> AsyncIterator[None]:
    """PTB's errors in the block become ``PlatformError``s that say, in one line, what
    Telegram refused and why (its own words)."""
    try:
        yield
    except (BadRequest, Forbidden) as exc:
        raise PlatformError(f"Telegram refused to {action}: {exc.message[:120]}") from exc
    except TelegramError as exc:
        raise PlatformError(f"Telegram failed to {action}: {exc.message[:120]}") from exc
