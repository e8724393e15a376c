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
    from workers.api import ImageBackend


@dataclass(slots=True)
class Services:
    """Everything long-lived: settings, storage, cached server state, chat model, plugins.

    ``plugins`` is attached right after construction (the manager needs the services).
    ``image_backend``, when given, replaces the configured one of the ``imagine`` plugin
    (tests inject a fake image back end here).
    """

    settings: Settings
    storage: Storage
    server_state: ServerState
    chat_model: BaseChatModel
    image_backend: ImageBackend | None = None
    plugins: PluginManager = field(init=False)
