"""Fixtures for the Telegram stories: the fake Bot API, a real App, the real adapter.

``tg`` starts a ``FakeBotAPI`` on loopback, an App with a scripted chat model and the fake
image back end, and a ``TelegramAdapter`` (real python-telegram-bot, long polling)
pointed at the fake through ``base_url`` / ``base_file_url``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.adapters.telegram import TelegramAdapter
from bot.app import App
from bot.config import LimitsSettings, PluginsSettings, Settings, TelegramSettings
from tests.fakes import PacedChatModel, script
from tests.imagine.fake_backend import FakeImageBackend
from tests.telegram_fake import FakeBotAPI

SMALL_IMAGES = {"default_width": 64, "default_height": 64, "default_steps": 4, "max_batch": 1}


@dataclass
class Tg:
    """Everything a story needs: the fake Telegram, the app, the adapter, the model."""

    fake: FakeBotAPI
    app: App
    adapter: TelegramAdapter
    model: PacedChatModel
    images: FakeImageBackend


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Generous rate limits, fast edits, short polls, small images."""
    return Settings(
        data_dir=tmp_path / "data",
        limits=LimitsSettings(user_burst=1000, server_burst=1000),
        plugins=PluginsSettings(disable_entry_points=True, config={"imagine": SMALL_IMAGES}),
        telegram=TelegramSettings(
            poll_timeout_s=1, edit_interval_s=0.05, group_edit_interval_s=0.05, admin_cache_s=0
        ),
    )


@pytest.fixture
def model() -> PacedChatModel:
    """Answers "Hello from Telegram." (at once) unless a story scripts otherwise."""
    return PacedChatModel(messages=script("Hello from Telegram.", repeat=True))


async def start_adapter(fake: FakeBotAPI, settings: Settings, app: App) -> TelegramAdapter:
    """The real adapter, pointed at the fake."""
    settings.telegram.base_url = fake.base_url
    settings.telegram.base_file_url = fake.base_file_url
    settings.telegram.token = SecretStr(fake.token)
    adapter = TelegramAdapter(app, settings.telegram)
    await adapter.start()
    return adapter


@pytest.fixture
async def tg(settings: Settings, model: PacedChatModel) -> AsyncIterator[Tg]:
    """The whole bot on a fake Telegram, polling."""
    fake = FakeBotAPI()
    await fake.start()
    images = FakeImageBackend()
    app = await App.start(settings, chat_model=model, image_backend=images)
    adapter: TelegramAdapter | None = None
    try:
        adapter = await start_adapter(fake, settings, app)
        yield Tg(fake, app, adapter, model, images)
    finally:
        if adapter is not None:
            await adapter.stop()
        await app.aclose()
        await fake.close()
