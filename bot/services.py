"""The shared state of a running bot, for the router, the adapters and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from bot.config import Settings
    from bot.server_state import ServerState
    from storage.repository import Storage


@dataclass(slots=True)
class Services:
    """The app's long-lived state: settings, storage, cached server state, chat model.

    The roof's own (router, adapters, CLI): plugins never see it; they get their port
    (``core.plugin.PluginContext``) from the plugin manager.
    """

    settings: Settings
    storage: Storage
    server_state: ServerState
    chat_model: BaseChatModel
