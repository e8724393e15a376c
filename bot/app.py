"""Assembles a running bot: storage, the chat model, plugins, agent and router.

Adapters (console, Discord, Telegram) receive an ``App`` and talk to ``app.router``
(events in, reply parts out; ``router.answers`` decides who is answered) and
``app.menus`` (each server's commands and their change events).
Start-up errors (bad config, missing model, unreachable database) surface as
``ConfigError`` / ``ModelError`` / ``StorageError`` with a message naming what is wrong.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from agents.agent import Agent
from bot.administration import BotAdministration
from bot.config import Settings
from bot.menus import CommandMenus
from bot.plugins import PluginManager
from bot.router import Router
from bot.scoped import ScopedSettings
from bot.server_state import ServerState
from bot.services import Services
from storage.repository import Storage

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from workers.api import ImageBackend

log = logging.getLogger(__name__)


class App:
    """A running bot; use ``await App.start(settings)`` or ``async with await App.start``."""

    def __init__(self, services: Services, plugins: PluginManager, router: Router) -> None:
        self.services = services
        self.plugins = plugins
        self.router = router
        self.menus = CommandMenus(plugins, services.storage)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        chat_model: BaseChatModel | None = None,
        image_backend: ImageBackend | None = None,
        status: Callable[[str], None] | None = None,
    ) -> App:
        """Open storage (migrating it), load the LLM unless given, load the plugins.

        ``image_backend`` replaces the configured image back end (tests pass a fake); it
        reaches only plugins that declare ``uses=("image",)``.
        """
        say = status or (lambda message: log.info("%s", message))
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if chat_model is None:
            chat_model = await _load_model(settings, say)
        say("opening storage")
        storage = await Storage.open(settings.database_url, echo=settings.storage.echo)
        try:
            scoped = ScopedSettings(storage.settings)
            services = Services(
                settings, storage, ServerState(scoped, storage.settings), chat_model
            )
            backends: dict[str, object] = {"llm": chat_model, "database": storage.engine}
            if image_backend is not None:
                backends["image"] = image_backend
            plugins = PluginManager(
                settings.plugins,
                storage,
                data_dir=settings.data_dir,
                scoped=scoped,
                backends=backends,
            )
            plugins.attach(
                BotAdministration(plugins, services.server_state, storage, settings.agent)
            )
            say("loading plugins")
            try:
                await plugins.load_all()
            except BaseException:
                await plugins.close()
                raise
            agent = Agent(chat_model, settings.llm, settings.agent, storage)
        except BaseException:
            await storage.close()
            raise
        _tune_gc()
        return cls(services, plugins, Router(services, plugins, agent))

    async def server_moved(self, platform: str, old_id: str, new_id: str) -> None:
        """A platform renamed a server (Telegram: a group became a supergroup): everything
        kept for it — settings, enabled plugins, conversations — continues under the new id."""
        if await self.services.storage.move_server(platform, old_id, new_id):
            self.services.server_state.forget_chat_flags()
            log.info("%s server %s is now %s", platform, old_id, new_id)

    async def aclose(self) -> None:
        """Unload plugins, then close storage (flushing pending writes)."""
        try:
            await self.plugins.close()
        finally:
            await self.services.storage.close()
            model = self.services.chat_model
            aclose, close = getattr(model, "aclose", None), getattr(model, "close", None)
            if callable(aclose):
                await aclose()
            elif callable(close):
                close()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _tune_gc() -> None:
    """Keep garbage-collection pauses out of reply latency (measured in bench/router.py).

    Everything loaded so far lives as long as the bot, so it is frozen out of the
    collector's scans; the young generation is allowed to grow larger so that a busy bot
    collects less often. Without this, full collections stalled turns for 80-160 ms.
    """
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)


async def _load_model(settings: Settings, say: Callable[[str], None]) -> BaseChatModel:
    from agents.factory import build_chat_model, resolve_model_path

    if settings.llm.backend == "llamacpp":
        path = await asyncio.to_thread(resolve_model_path, settings.llm)
        say(f"loading model {path}")
    else:
        say(f"connecting to {settings.llm.base_url}")
    return await asyncio.to_thread(build_chat_model, settings.llm)
