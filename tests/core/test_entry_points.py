"""A plugin from another installed distribution is found through its entry point."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import App
from bot.config import Settings
from bot.plugins import discover_sources
from tests.core.conftest import say
from tests.fakes import ScriptedChatModel, script

PLUGIN_CODE = """
from core.plugin import CommandContext, Plugin

plugin = Plugin("greeter", "Says hello", enabled_by_default=False)


@plugin.command("greet", "Say hello")
async def greet(ctx: CommandContext) -> str:
    return "hello from an installed plugin"
"""


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """A distribution installed into a path entry: module + dist-info with an entry point."""
    (tmp_path / "atelier_greeter.py").write_text(PLUGIN_CODE)
    info = tmp_path / "atelier_greeter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: atelier-greeter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[atelier.plugins]\ngreeter = atelier_greeter\n")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("atelier_greeter", None)


def test_entry_points_are_discovered(installed: Path) -> None:
    sources = discover_sources()
    assert sources["greeter"].module == "atelier_greeter"
    assert "greeter" not in discover_sources(include_entry_points=False)


async def test_an_installed_plugin_loads_and_follows_enablement(
    installed: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    model = ScriptedChatModel(messages=script("hi", repeat=True))
    async with await App.start(settings, chat_model=model) as app:
        assert "disabled in this server" in await say(app, "/greet")
        await say(app, "/plugins enable greeter", admin=True)
        assert await say(app, "/greet") == "hello from an installed plugin"
