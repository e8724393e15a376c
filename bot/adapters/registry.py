"""Which adapters exist, when each is configured, and how to build one (lazily).

``atelier run`` starts every adapter whose token is set and says which it started. An
adapter's module (and thereby its SDK) is imported only when it is built, so a bot that
serves only Discord never imports ``telegram``. A new platform adds one ``Entry`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import Settings
    from core.adapter import Adapter


@dataclass(frozen=True, slots=True)
class Entry:
    """One platform: its name, the secret that turns it on, and its factory."""

    name: str
    token_env: str
    configured: Callable[[Settings], bool]
    build: Callable[[App, Settings], Adapter]


def _discord_configured(settings: Settings) -> bool:
    token = settings.discord.token
    return token is not None and bool(token.get_secret_value())


def _build_discord(app: App, settings: Settings) -> Adapter:
    from bot.adapters.discord import DiscordAdapter

    return DiscordAdapter(app, settings.discord)


def _telegram_configured(settings: Settings) -> bool:
    token = settings.telegram.token
    return token is not None and bool(token.get_secret_value())


def _build_telegram(app: App, settings: Settings) -> Adapter:
    from bot.adapters.telegram import TelegramAdapter

    return TelegramAdapter(app, settings.telegram)


ENTRIES: tuple[Entry, ...] = (
    Entry("discord", "ATELIER_DISCORD__TOKEN", _discord_configured, _build_discord),
    Entry("telegram", "ATELIER_TELEGRAM__TOKEN", _telegram_configured, _build_telegram),
)


def configured(settings: Settings) -> list[Entry]:
    """The adapters whose token is set, in registry order."""
    return [entry for entry in ENTRIES if entry.configured(settings)]
