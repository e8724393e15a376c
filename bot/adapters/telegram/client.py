"""The Telegram adapter: a python-telegram-bot ``Application`` serving one ``App``.

Updates arrive by long polling (default) or a webhook; each message or button press
becomes a core event and its reply is rendered by the shared renderer through
``TelegramTarget``. The adapter reports facts (private chat, mention, reply to the bot,
a listed chat) and asks the core who is answered (and which other messages plugins still
read: moderation); chat administrators are admins (``getChatMember``, cached briefly),
and in a private chat the user administers their own chat. Plugins act through
``TelegramActions`` (delete, restrict, post). Each chat's command menu
(``setMyCommands`` with a chat scope) follows the plugins enabled there. Flood control
is PTB's ``AIORateLimiter``; a group that becomes a supergroup keeps everything
(``App.server_moved``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    CallbackQuery,
    Chat,
    Message,
    Update,
    User,
)
from telegram.constants import ChatAction
from telegram.error import Forbidden, TelegramError
from telegram.ext import AIORateLimiter, Application, ContextTypes, TypeHandler

from bot.render import Reply, WriteBudget
from core.adapter import BUTTONS, DELETE, EDITS, FILES, POST, TIMEOUT, Limits
from core.cache import LRUDict, TTLCache
from core.errors import AtelierError, ConfigError
from core.events import ButtonEvent, Event, MessageEvent
from core.plugin import Command

from .actions import TelegramActions
from .render import CALLBACK_DATA_BYTES, MESSAGE_LIMIT, TelegramTarget
from .translate import PLATFORM, document_attachment, event_of, origin_of

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import TelegramSettings

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")  # what setMyCommands accepts as a command name
_TYPING_EVERY_S = 4.5  # Telegram shows a chat action for about 5 s
_MENU_DEBOUNCE_S = 0.5


class TelegramAdapter:
    """Serves one App on Telegram (a ``core.adapter.Adapter``): ``start()``, ``stop()``."""

    name = PLATFORM
    capabilities = frozenset({BUTTONS, EDITS, FILES, DELETE, TIMEOUT, POST})

    def __init__(self, app: App, settings: TelegramSettings) -> None:
        if settings.token is None or not settings.token.get_secret_value():
            raise ConfigError("no Telegram token: set ATELIER_TELEGRAM__TOKEN")
        if settings.mode == "webhook" and not settings.webhook_url:
            raise ConfigError("telegram.mode is webhook but telegram.webhook_url is empty")
        self.app = app
        self.settings = settings
        self.application = (
            Application.builder()
            .token(settings.token.get_secret_value())
            .base_url(settings.base_url)
            .base_file_url(settings.base_file_url)
            .rate_limiter(AIORateLimiter(max_retries=3))
            .concurrent_updates(False)  # in order; replies run in tasks of their own
            .build()
        )
        self.application.add_handler(TypeHandler(Update, self._on_update))
        file_bytes = int(settings.max_file_mb * 1024 * 1024)
        self._limits = {
            True: Limits(MESSAGE_LIMIT, settings.edit_interval_s, file_bytes, CALLBACK_DATA_BYTES),
            False: Limits(
                MESSAGE_LIMIT, settings.group_edit_interval_s, file_bytes, CALLBACK_DATA_BYTES
            ),
        }
        self.limits = self._limits[True]
        self._budgets = {True: WriteBudget(30, 1.0), False: WriteBudget(20, 60.0)}
        # Posts go to groups (the moderators' chat): their limits and write budget.
        self._actions = TelegramActions(
            self.application.bot, self.capabilities, self._limits[False], self._budgets[False]
        )
        self._listed = set(settings.chat_chats)
        self._admins: TTLCache[tuple[int, int], bool] = TTLCache(settings.admin_cache_s)
        self._menus: LRUDict[int, asyncio.Task[None]] = LRUDict(10_000)
        self._work: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self._started = False
        self.me: User | None = None

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, set the default command menu, and start receiving updates."""
        await self.application.initialize()
        self.me = self.application.bot.bot
        self.app.menus.subscribe(PLATFORM, self._commands_changed)
        await self.application.start()
        self._started = True
        await self._set_menu(None, self.app.menus.default_commands())
        updater = self.application.updater
        assert updater is not None
        if self.settings.mode == "webhook":
            secret = self.settings.webhook_secret
            await updater.start_webhook(
                listen=self.settings.listen,
                port=self.settings.port,
                url_path="telegram",
                webhook_url=self.settings.webhook_url,
                secret_token=secret.get_secret_value() if secret else None,
                allowed_updates=["message", "callback_query"],
            )
        else:
            await updater.start_polling(
                timeout=self.settings.poll_timeout_s,
                allowed_updates=["message", "callback_query"],
            )
        log.info("telegram: serving as @%s (%s)", self.me.username, self.settings.mode)

    async def stop(self) -> None:
        """Drop pending replies, stop receiving updates, disconnect."""
        if self._stopped.is_set():
            return
        self.app.menus.unsubscribe(PLATFORM, self._commands_changed)
        tasks = [*self._work, *self._menus.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            updater = self.application.updater
            if updater is not None and updater.running:
                await updater.stop()
            if self._started:
                await self.application.stop()
            await self.application.shutdown()
        finally:
            self._stopped.set()

    async def wait_closed(self) -> None:
        """Return when the adapter was stopped."""
        await self._stopped.wait()

    # ---- updates ---------------------------------------------------------------------

    async def _on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every update: messages and button presses get their own task; the rest
        (edited messages, channel posts) is ignored."""
        if not isinstance(update, Update):
            return
        message = update.message
        if update.callback_query is not None:
            self._spawn(self._on_press(update.callback_query))
        elif message is not None and (message.migrate_to_chat_id or message.migrate_from_chat_id):
            await self._guarded(self._on_message(message))  # before the chat's next update
        elif message is not None:
            self._spawn(self._on_message(message))

    async def _on_message(self, message: Message) -> None:
        chat, user = message.chat, message.from_user
        if message.migrate_to_chat_id is not None:
            await self.app.server_moved(PLATFORM, str(chat.id), str(message.migrate_to_chat_id))
            return
        if message.migrate_from_chat_id is not None:
            await self.app.server_moved(PLATFORM, str(message.migrate_from_chat_id), str(chat.id))
            return
        if user is None or user.is_bot or self.me is None:
            return
        if not (message.text or message.document):
            return  # stickers, voice, locations, polls: not requests
        thread = message.message_thread_id if message.is_topic_message else None
        origin = origin_of(chat, user, thread_id=thread, is_admin=False)
        files = document_attachment(message, self._download)
        found = event_of(message, self.me, origin, self._listed, files)
        if found is None:
            return
        if isinstance(found, MessageEvent) and not await self.app.router.answers(found):
            if await self.app.router.watches(found):  # plugins read it (moderation): quietly
                event = _with_admin(found, await self._is_admin(chat, user))
                await self._render(event, message, thread, drafts=False, typing=False)
            return
        event = _with_admin(found, await self._is_admin(chat, user))
        self._ensure_menu(chat)
        await self._render(event, message, thread, drafts=chat.type == Chat.PRIVATE)

    async def _on_press(self, query: CallbackQuery) -> None:
        """A keyboard press: always answered (a stale button too), then routed."""
        try:
            await query.answer()
        except TelegramError as exc:
            log.info("telegram: could not answer callback %s: %s", query.id, exc)
        message = query.message
        if not query.data or not isinstance(message, Message):
            return
        chat = message.chat
        thread = message.message_thread_id if message.is_topic_message else None
        admin = await self._is_admin(chat, query.from_user)
        origin = origin_of(chat, query.from_user, thread_id=thread, is_admin=admin)
        await self._render(ButtonEvent(origin, query.data), message, thread, drafts=False)

    async def _render(
        self,
        event: Event,
        answering: Message,
        thread: int | None,
        *,
        drafts: bool,
        typing: bool = True,
    ) -> None:
        """Route the event and render its reply to ``answering`` in its chat; "typing…"
        shows until the reply begins (unless ``typing`` is off: a message only read)."""
        chat = answering.chat
        private = chat.type == Chat.PRIVATE
        target = TelegramTarget(
            self.application.bot,
            chat.id,
            reply_to=answering.message_id,
            thread_id=thread,
            upload_limit=self.limits.file_bytes,
            drafts=drafts,
        )
        reply: Reply[Message] = Reply(target, self._budgets[private], self._limits[private])
        typist = asyncio.create_task(self._typing(chat.id)) if typing else None
        try:
            await reply.render(
                self.app.router.handle(event, actions=self._actions),
                started=typist.cancel if typist is not None else None,
            )
        finally:
            if typist is not None:
                typist.cancel()

    async def _typing(self, chat_id: int) -> None:
        while True:
            try:
                await self.application.bot.send_chat_action(chat_id, ChatAction.TYPING)
            except TelegramError as exc:
                log.debug("telegram: chat action failed: %s", exc)
                return
            await asyncio.sleep(_TYPING_EVERY_S)

    async def _is_admin(self, chat: Chat, user: User) -> bool:
        """Chat administrators (and the user in their own private chat) are admins."""
        if chat.type == Chat.PRIVATE:
            return True

        async def ask() -> bool:
            try:
                member = await self.application.bot.get_chat_member(chat.id, user.id)
            except TelegramError as exc:
                log.warning("telegram: getChatMember failed in %s: %s", chat.id, exc)
                return False
            return member.status in ("administrator", "creator")

        return await self._admins.get((chat.id, user.id), ask)

    async def _download(self, file_id: str) -> bytes:
        file = await self.application.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Forbidden as exc:
            log.warning("telegram: not allowed to answer (blocked or removed): %s", exc)
        except (TelegramError, AtelierError) as exc:
            log.warning("telegram: reply failed: %s", exc)
        except Exception:
            log.exception("telegram: reply failed")

    # ---- command menus ---------------------------------------------------------------

    def _ensure_menu(self, chat: Chat) -> None:
        """Give a chat its own menu the first time this process sees it."""
        if chat.id not in self._menus:
            self._schedule_menu(chat.id)

    def _schedule_menu(self, chat_id: int) -> None:
        pending = self._menus.get(chat_id)
        if pending is not None and not pending.done():
            return
        self._menus[chat_id] = asyncio.create_task(self._sync_menu(chat_id))

    async def _sync_menu(self, chat_id: int) -> None:
        await asyncio.sleep(_MENU_DEBOUNCE_S)  # several toggles at once make one call
        try:
            specs = await self.app.menus.commands_for(PLATFORM, str(chat_id))
            await self._set_menu(chat_id, specs)
        except (TelegramError, AtelierError) as exc:
            log.warning("telegram: could not set the menu of %s: %s", chat_id, exc)

    async def _set_menu(self, chat_id: int | None, specs: list[Command]) -> None:
        commands = [
            BotCommand(spec.name, (spec.description or spec.name)[:256])
            for spec in specs
            if _NAME.match(spec.name)
        ]
        scope = BotCommandScopeChat(chat_id) if chat_id is not None else BotCommandScopeDefault()
        await self.application.bot.set_my_commands(commands, scope=scope)

    async def _commands_changed(self, server_id: str | None) -> None:
        """The core's menu change event: resync that chat (every known chat after a reload)."""
        if self._stopped.is_set():
            return
        if server_id is None:
            for chat_id in list(self._menus):
                self._schedule_menu(chat_id)
        elif re.fullmatch(r"-?\d+", server_id):
            self._schedule_menu(int(server_id))


def _with_admin(event: Event, admin: bool) -> Event:
    """The event with the sender's admin status (looked up after the core said it answers)."""
    return replace(event, origin=replace(event.origin, is_admin=True)) if admin else event
