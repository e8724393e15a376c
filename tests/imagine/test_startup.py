"""Start-up stories: a configured image model that is missing stops the bot, naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app import App
from bot.config import Settings
from core.errors import ModelError
from tests.fakes import ScriptedChatModel, script


async def test_a_missing_image_model_is_a_start_up_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "sd15"
    settings = Settings(
        data_dir=tmp_path / "data",
        plugins={"disable_entry_points": True, "config": {"imagine": {"model_path": str(missing)}}},
    )
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    with pytest.raises(ModelError, match=re.escape(f"image model not found: {missing}")):
        await App.start(settings, chat_model=model)


async def test_a_corrupt_preloaded_model_is_a_start_up_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"this is not a checkpoint")
    settings = Settings(
        data_dir=tmp_path / "data",
        plugins={
            "disable_entry_points": True,
            "config": {"imagine": {"model_path": str(corrupt), "preload": True}},
        },
    )
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    with pytest.raises(ModelError, match=re.escape(str(corrupt))):
        await App.start(settings, chat_model=model)
