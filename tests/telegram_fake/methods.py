"""The Bot API methods the fake answers, each a function of decoded parameters.

``BotMethods.call(name, params)`` finds the method (names are case-insensitive, as on
Telegram), runs it on the ``World`` and returns the ``result``; refusals are ``ApiError``.
Uploaded files arrive as ``Upload`` values, everything else already JSON-decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import time
from collections.abc import Callable
from typing import Any

from .messages import MessageMethods
from .objects import ApiError, bad_request
from .state import World

API_METHODS = (
    "getMe getUpdates setWebhook deleteWebhook getWebhookInfo logOut close sendMessage"
    " sendMessageDraft sendPhoto sendDocument sendChatAction editMessageText editMessageCaption"
    " editMessageReplyMarkup deleteMessage setMyCommands deleteMyCommands getMyCommands"
    " getChatMember getChat answerCallbackQuery getFile restrictChatMember"
).split()
DOWNLOAD_LIMIT = 20 * 1024 * 1024
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# A restriction ending sooner than 30 s or later than 366 days from now is for ever.
FINITE_RESTRICTION_S = (30, 366 * 24 * 3600)


class BotMethods(MessageMethods):
    """Every method the fake answers, bound to one ``World``."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._poll_generation = 0
        self._table: dict[str, Callable[[dict[str, Any]], Any]] = {
            name.lower(): getattr(self, name) for name in API_METHODS
        }

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """Run ``method``; an unknown one is 404 ``Not Found`` (as on Telegram)."""
        handler = self._table.get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        result = handler(params)
        return await result if inspect.isawaitable(result) else result

    # --- the bot and updates ------------------------------------------------------------

    def getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        """The bot's ``User`` with its capabilities."""
        return {
            **self.world.bot.to_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Long polling: answer as soon as updates exist, else after ``timeout`` seconds."""
        world = self.world
        if world.webhook["url"]:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        if params.get("allowed_updates") is not None:
            world.allowed_updates = list(params["allowed_updates"])
        world.confirm(int(params.get("offset", 0)))
        limit = min(max(int(params.get("limit", 100)), 1), 100)
        timeout = max(float(params.get("timeout", 0)), 0.0)
        self._poll_generation += 1
        mine = self._poll_generation
        await world.notify()  # an older poll now answers 409
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with world.changed:
            while True:
                if mine != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request;"
                        " make sure that only one bot instance is running",
                    )
                updates = world.pending(limit)
                remaining = deadline - loop.time()
                if updates or world.closing or remaining <= 0:
                    return updates
                world.waiting_polls += 1
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await world.changed.wait()
                finally:
                    world.waiting_polls -= 1

    def setWebhook(self, params: dict[str, Any]) -> bool:
        """Record the webhook (an HTTPS URL, as Telegram demands); ``url=""`` removes it."""
        url = str(params.get("url", ""))
        if url and not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.fullmatch(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self.world.updates.clear()
        self.world.webhook = {"url": url, **{k: v for k, v in params.items() if k != "url"}}
        return True

    def deleteWebhook(self, params: dict[str, Any]) -> bool:
        """Forget the webhook; ``drop_pending_updates`` empties the queue."""
        if params.get("drop_pending_updates"):
            self.world.updates.clear()
        self.world.webhook = {"url": ""}
        return True

    def getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        """The recorded webhook and the number of pending updates."""
        info: dict[str, Any] = {
            "url": self.world.webhook["url"],
            "has_custom_certificate": False,
            "pending_update_count": len(self.world.updates),
        }
        for key in ("max_connections", "allowed_updates", "ip_address"):
            if key in self.world.webhook:
                info[key] = self.world.webhook[key]
        return info

    def logOut(self, params: dict[str, Any]) -> bool:
        """Always ok."""
        return True

    def close(self, params: dict[str, Any]) -> bool:
        """Always ok."""
        return True

    # --- commands, members, chats, callbacks, files -------------------------------------

    def setMyCommands(self, params: dict[str, Any]) -> bool:
        """Store the command list for its scope and language."""
        commands = list(params.get("commands") or [])
        if len(commands) > 100:
            raise bad_request("too many commands")
        for command in commands:
            if not _COMMAND.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.world.commands[self._scope_key(params)] = commands
        return True

    def deleteMyCommands(self, params: dict[str, Any]) -> bool:
        """Forget the command list of the scope."""
        self.world.commands.pop(self._scope_key(params), None)
        return True

    def getMyCommands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The stored command list of the scope (``[]`` when none)."""
        return list(self.world.commands.get(self._scope_key(params), []))

    def getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        """``administrator`` for the bot (unless demoted) and promoted users, else
        ``member``."""
        chat = self._chat(params)
        user_id = int(params.get("user_id", 0))
        user = self.world.bot if user_id == self.world.bot.id else self.world.users.get(user_id)
        if user is None:
            raise bad_request("user not found")
        if user.is_bot and chat.id not in self.world.demoted:
            return _administrator(user.to_json(), bot=True)
        if (chat.id, user.id) in self.world.admins:
            return _administrator(user.to_json(), bot=False)
        return {"status": "member", "user": user.to_json()}

    def restrictChatMember(self, params: dict[str, Any]) -> bool:
        """Restrict a member of a supergroup until ``until_date`` (recorded in
        ``World.restrictions``); as on Telegram, a date under 30 s or over 366 days
        ahead (or none) means for ever."""
        chat = self._chat(params)
        if chat.type != "supergroup":
            raise bad_request("method is available only for supergroups")
        user_id = int(params.get("user_id", 0))
        if user_id == self.world.bot.id:
            raise bad_request("can't restrict self")
        if user_id not in self.world.users:
            raise bad_request("PARTICIPANT_ID_INVALID")
        if chat.id in self.world.demoted:
            raise bad_request("not enough rights to restrict/unrestrict chat member")
        if (chat.id, user_id) in self.world.admins:
            raise bad_request("user is an administrator of the chat")
        permissions = params.get("permissions")
        if not isinstance(permissions, dict):
            raise bad_request("can't parse permissions JSON object")
        until = int(params.get("until_date") or 0)
        shortest, longest = FINITE_RESTRICTION_S
        forever = not shortest <= until - time.time() <= longest
        self.world.restrictions[(chat.id, user_id)] = {
            "permissions": permissions,
            "until_date": 0 if forever else until,
            "forever": forever,
        }
        return True

    def getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``ChatFullInfo`` of a known chat."""
        chat = self._chat(params)
        gifts = {k: False for k in ("limited_gifts", "unique_gifts", "gifts_from_channels")}
        return {
            **chat.to_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "premium_subscription": False,
                **gifts,
            },
        }

    def answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        """Answer a pending callback query, once."""
        query_id = str(params.get("callback_query_id", ""))
        if self.world.callbacks.get(query_id, True):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self.world.callbacks[query_id] = True
        self.world.answered.append(query_id)
        return True

    def getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        """A ``File`` whose ``file_path`` is served under ``/file/bot<token>/``."""
        stored = self.world.files.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return stored.to_json()

    # --- helpers ------------------------------------------------------------------------
    def _scope_key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        scope = dict(params.get("scope") or {"type": "default"})
        if "chat_id" in scope:
            scope["chat_id"] = self.world.resolve_chat(scope["chat_id"]).id
        parts = tuple(scope.get(k) for k in ("type", "chat_id", "user_id"))
        return (*parts, params.get("language_code") or "")


def _administrator(user: dict[str, Any], *, bot: bool) -> dict[str, Any]:
    rights = (
        "can_manage_chat can_delete_messages can_manage_video_chats can_restrict_members"
        " can_promote_members can_change_info can_invite_users can_post_stories"
        " can_edit_stories can_delete_stories can_pin_messages"
    ).split()
    return {
        "status": "administrator",
        "user": user,
        "can_be_edited": False,
        "is_anonymous": False,
        **dict.fromkeys(rights, True),
        "can_promote_members": not bot,
    }
