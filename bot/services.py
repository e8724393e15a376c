"""The shared services a running bot hands to commands, plugins and the agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from bot.config import Settings
    from bot.plugins import PluginManager
    from storage.repository import Storage


@dataclass(slots=True)
class Services:
    """Everything long-lived: settings, storage, plugins and the chat model."""

    settings: Settings
    storage: Storage
    plugins: PluginManager
    chat_model: BaseChatModel
