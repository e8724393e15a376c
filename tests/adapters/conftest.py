"""Fixtures for adapter tests: a real App on a temporary data dir with a scripted model."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.config import Settings
from tests.fakes import ScriptedChatModel, script

FAKE_ANSWER = "Hello from the fake model."


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Default settings (no ATELIER_* from the outside) with data under ``tmp_path``."""
    for name in list(os.environ):
        if name.upper().startswith("ATELIER_"):
            monkeypatch.delenv(name)
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def fake_answer() -> str:
    """What the scripted model of the ``app`` fixture says to every message."""
    return FAKE_ANSWER


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    """A started App whose chat model always answers ``FAKE_ANSWER``."""
    model = ScriptedChatModel(messages=script(FAKE_ANSWER, repeat=True))
    started = await App.start(settings, chat_model=model)
    try:
        yield started
    finally:
        await started.aclose()
