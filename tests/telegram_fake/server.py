"""``FakeBotAPI``: a fake Telegram Bot API server on 127.0.0.1 for the real python-telegram-bot.

The test-facing façade: build chats and users, inject what users do (messages, documents,
edits, button presses, a group's migration), inject faults, and read back what the bot
did. Updates go to ``getUpdates`` long polling, or by POST to a webhook once
``set_webhook_target`` names one. It never reaches beyond loopback and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from .messages import document_json
from .methods import BotMethods
from .objects import Chat, User, callback_data_of, utf16_len
from .state import World, public
from .wire import ApiServer, Fault

if TYPE_CHECKING:
    from types import TracebackType


class FakeBotAPI:
    """A fake Telegram Bot API for one bot. See the package docstring for usage."""

    def __init__(self, token: str = "123456:TEST", *, bot_username: str = "atelier_bot") -> None:
        self.token = token
        self.world = World(token, bot_username)
        self.methods = BotMethods(self.world)
        self.server = ApiServer(self.world, self.methods)
        self.webhook_deliveries: list[tuple[int, int]] = []
        self._target: tuple[str, str | None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> FakeBotAPI:
        """Listen on a free port of 127.0.0.1."""
        await self.server.start()
        return self

    async def close(self) -> None:
        """End pending long polls, stop webhook deliveries, then stop the server."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.server.close()

    async def __aenter__(self) -> FakeBotAPI:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def base_url(self) -> str:
        """PTB's ``base_url`` (it appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """PTB's ``base_file_url`` (it appends the token)."""
        return f"{self.url}/file/bot"

    @property
    def bot_id(self) -> int:
        """The bot's user id (the token's number)."""
        return self.world.bot.id

    @property
    def bot_username(self) -> str:
        """The bot's username, without ``@``."""
        return self.world.bot.username or ""

    # --- chats and users ----------------------------------------------------------------

    def user(self, first_name: str, *, username: str | None = None) -> User:
        """A new user."""
        return self.world.add_user(first_name, username)

    def private_chat(self, user: User) -> Chat:
        """The private chat with ``user`` (``chat.id == user.id``)."""
        return self.world.private_chat(user)

    def group(self, title: str, *, supergroup: bool = True) -> Chat:
        """A new supergroup (or, ``supergroup=False``, a basic group) with the bot in it."""
        return self.world.group(title, supergroup=supergroup)

    def channel(self, title: str) -> Chat:
        """A new channel the bot administers (for ``channel_post``)."""
        return self.world.channel(title)

    def make_admin(self, chat: Chat, user: User) -> None:
        """``getChatMember`` answers ``administrator`` for ``user`` in ``chat``."""
        self.world.admins.add((chat.id, user.id))

    def demote_bot(self, chat: Chat) -> None:
        """The bot is no administrator of ``chat`` any more: it may not delete others'
        messages or restrict anyone there."""
        self.world.demoted.add(chat.id)

    # --- injecting what users do --------------------------------------------------------

    async def send_text(
        self,
        chat: Chat,
        user: User,
        text: str,
        *,
        reply_to_bot: int | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """``user`` writes ``text``; ``/command`` and ``@bot`` entities are added unless
        ``entities`` is given; ``reply_to_bot`` names a bot message it replies to."""
        fields: dict[str, Any] = {"text": text}
        found = self._auto_entities(text) if entities is None else entities
        if found:
            fields["entities"] = found
        if reply_to_bot is not None:
            target = self.world.message(chat, reply_to_bot)
            if target is None or not self.world.is_bots(target):
                raise ValueError(f"no bot message {reply_to_bot} in chat {chat.id}")
            fields["reply_to_message"] = {
                k: v for k, v in public(target).items() if k != "reply_to_message"
            }
        return await self._post(chat, user, fields)

    async def send_document(
        self,
        chat: Chat,
        user: User,
        filename: str,
        data: bytes,
        mime: str = "application/octet-stream",
        caption: str = "",
    ) -> dict[str, Any]:
        """``user`` sends a file; ``getFile`` and the download serve ``data``."""
        stored = self.world.store_file(data, filename, mime, "document")
        fields: dict[str, Any] = {"document": document_json(stored)}
        if caption:
            fields["caption"] = caption
        return await self._post(chat, user, fields)

    async def send_other(self, chat: Chat, user: User, kind: str) -> dict[str, Any]:
        """A message without text: ``sticker``, ``voice``, ``location`` or ``poll``."""
        return await self._post(chat, user, self.world.content_of(kind))

    async def edit_text(self, chat: Chat, user: User, message_id: int, text: str) -> dict[str, Any]:
        """``user`` edits their message: an ``edited_message`` update."""
        message = self.world.message(chat, message_id)
        if message is None or message.get("from", {}).get("id") != user.id:
            raise ValueError(f"no message {message_id} by {user.first_name} in chat {chat.id}")
        message["text"] = text
        message.pop("entities", None)
        if found := self._auto_entities(text):
            message["entities"] = found
        message["edit_date"] = max(message["date"], message.get("edit_date", 0)) + 1
        kind = "edited_channel_post" if chat.type == "channel" else "edited_message"
        await self._deliver(self.world.new_update(kind, public(message)))
        return public(message)

    async def channel_post(self, chat: Chat, text: str) -> dict[str, Any]:
        """A post in the channel ``chat`` (``sender_chat`` set, no ``from``)."""
        if chat.type != "channel":
            raise ValueError(f"chat {chat.id} is a {chat.type}, not a channel")
        fields: dict[str, Any] = {"text": text}
        if found := self._auto_entities(text):
            fields["entities"] = found
        message = self.world.new_message(chat, None, fields)
        await self._deliver(self.world.new_update("channel_post", public(message)))
        return public(message)

    async def press(self, chat: Chat, user: User, message_id: int, data: str) -> str:
        """``user`` presses the inline button ``data`` under bot message ``message_id``:
        a ``callback_query`` update. Returns the callback query id."""
        message = self.world.message(chat, message_id)
        if message is None or not self.world.is_bots(message):
            raise ValueError(f"no bot message {message_id} in chat {chat.id}")
        buttons = callback_data_of(message.get("reply_markup"))
        if data not in buttons:
            raise ValueError(f"message {message_id} has no button {data!r}; it has {buttons}")
        query_id = self.world.new_query_id()
        query = {
            "id": query_id,
            "from": user.to_json(),
            "message": public(message),
            "chat_instance": str(abs(chat.id) * 7919 % 10**18),
            "data": data,
        }
        await self._deliver(self.world.new_update("callback_query", query))
        return query_id

    async def migrate(self, group: Chat, *, by: User | None = None) -> Chat:
        """Upgrade a basic group to a supergroup; the old id then answers 400 with
        ``migrate_to_chat_id``. ``by`` defaults to a group owner the fake makes up."""
        if group.type != "group":
            raise ValueError(f"chat {group.id} is a {group.type}, not a basic group")
        assert group.title is not None
        new = self.world.group(group.title, supergroup=True)
        owner = by or self.world.group_owner()
        self.world.admins |= {(new.id, uid) for cid, uid in self.world.admins if cid == group.id}
        await self._post(group, owner, {"migrate_to_chat_id": new.id})
        self.world.migrated[group.id] = new.id
        await self._post(new, owner, {"migrate_from_chat_id": group.id})
        return new

    def set_webhook_target(self, url: str, secret: str | None) -> None:
        """Deliver updates by POST to ``url`` (with ``X-Telegram-Bot-Api-Secret-Token``)."""
        self._target = (url, secret)

    async def _post(self, chat: Chat, user: User, fields: dict[str, Any]) -> dict[str, Any]:
        if chat.type == "private" and chat.id != user.id:
            raise ValueError(f"{user.first_name} is not in the private chat {chat.id}")
        if chat.type == "channel":
            raise ValueError("users do not post in channels: use channel_post")
        if chat.id in self.world.migrated:
            raise ValueError(f"chat {chat.id} was migrated to {self.world.migrated[chat.id]}")
        message = self.world.new_message(chat, user, fields)
        await self._deliver(self.world.new_update("message", public(message)))
        return public(message)

    async def _deliver(self, update: dict[str, Any]) -> None:
        if self._target is None:
            await self.world.enqueue(update)
            return
        url, secret = self._target
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        try:
            async with self._session.post(url, json=update, headers=headers) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.webhook_deliveries.append((update["update_id"], status))

    def _auto_entities(self, text: str) -> list[dict[str, Any]]:
        entities: list[dict[str, Any]] = []
        command_end = 0
        if text.startswith("/") and len(text) > 1:
            command = text.split(maxsplit=1)[0]
            command_end = len(command)
            entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command)})
        pattern = re.escape("@" + self.bot_username) + r"(?![A-Za-z0-9_])"
        for match in re.finditer(pattern, text, flags=re.IGNORECASE):
            if match.start() >= command_end:
                offset, length = utf16_len(text[: match.start()]), utf16_len(match.group())
                entities.append({"type": "mention", "offset": offset, "length": length})
        return entities

    # --- faults -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        description: str = "",
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"``: any) with ``status``:
        429 carries ``parameters.retry_after``; 403 says the bot was blocked."""
        self.server.faults.append(Fault(method.lower(), status, retry_after, times, description))

    def block(self, chat: Chat) -> None:
        """Sends, edits and deletes in ``chat`` answer 403 (blocked by the user / kicked)."""
        self.world.blocked.add(chat.id)

    def unblock(self, chat: Chat) -> None:
        """Undo ``block``."""
        self.world.blocked.discard(chat.id)

    # --- reading back -------------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every method call in arrival order: (method, params; files as filename + size)."""
        return self.server.calls

    @property
    def call_statuses(self) -> list[int]:
        """The HTTP status of each entry of ``calls``."""
        return self.server.statuses

    @property
    def polling(self) -> bool:
        """Whether a ``getUpdates`` long poll is waiting for updates right now."""
        return self.world.waiting_polls > 0

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of ``method`` (case-insensitive), faulted ones too."""
        return [params for name, params in self.calls if name.lower() == method.lower()]

    def bot_messages(self, chat: Chat) -> list[dict[str, Any]]:
        """The bot's messages in ``chat`` as they are now (after edits and deletes)."""
        return self.world.bot_messages(chat)

    def deleted(self, chat: Chat) -> list[int]:
        """Ids of the messages deleted in ``chat`` (by ``deleteMessage``), in order."""
        return [message for where, message in self.world.deleted if where == chat.id]

    def restriction(self, chat: Chat, user: User) -> dict[str, Any] | None:
        """The last ``restrictChatMember`` of ``user`` in ``chat``: ``permissions``,
        ``until_date`` (0: for ever) and ``forever``; None when never restricted."""
        found = self.world.restrictions.get((chat.id, user.id))
        return None if found is None else dict(found)

    def edits_of(self, chat: Chat, message_id: int) -> int:
        """How many successful edits message ``message_id`` in ``chat`` received."""
        return self.world.edits[(chat.id, message_id)]

    def commands_for(self, chat: Chat | None) -> list[dict[str, Any]] | None:
        """The last ``setMyCommands`` for the chat's scope (``None`` chat: default scope,
        no language); ``None`` when never set (or deleted)."""
        key = ("chat", chat.id, None, "") if chat else ("default", None, None, "")
        commands = self.world.commands.get(key)
        return None if commands is None else list(commands)

    def answered_callbacks(self) -> list[str]:
        """Callback query ids the bot answered, in order."""
        return list(self.world.answered)

    def chat_actions(self, chat: Chat) -> list[str]:
        """Every ``sendChatAction`` action in ``chat``, in order."""
        return list(self.world.actions.get(chat.id, []))

    def drafts(self, chat: Chat) -> list[dict[str, Any]]:
        """Every ``sendMessageDraft`` in ``chat``: ``draft_id``, ``text`` (and ``html``)."""
        return [dict(d) for d in self.world.drafts.get(chat.id, [])]

    async def until(self, check: Callable[[], Any], within: float = 10.0) -> Any:
        """Poll ``check`` (sync or async) until it is truthy and return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            if loop.time() >= deadline:
                raise AssertionError(f"still false after {within} s: {check!r}")
            await asyncio.sleep(0.01)
