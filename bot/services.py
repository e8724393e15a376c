"""The shared services a running bot hands to commands, plugins and the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from bot.config import Settings
    from bot.plugins import PluginManager
    from bot.server_state import ServerState
    from storage.repository import Storage


@dataclass(slots=True)
class Services:
    """Everything long-lived: settings, storage, cached server state, chat model, plugins.

    ``plugins`` is attached right after construction (the manager needs the services).
    """

    settings: Settings
    storage: Storage
    server_state: ServerState
    chat_model: BaseChatModel
    plugins: PluginManager = field(init=False)
