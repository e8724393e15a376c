"""The knowledge plugin's settings: list values from the environment arrive as JSON text
and are read as lists; a bad value stops start-up naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import App
from core.errors import ConfigError, ModelError
from plugins.knowledge.config import KnowledgeSettings
from tests.fakes import ScriptedChatModel, script
from tests.knowledge.conftest import knowledge_settings


async def test_allowed_paths_from_the_environment_is_json_text(tmp_path: Path) -> None:
    # What ATELIER_PLUGINS__CONFIG__KNOWLEDGE__ALLOWED_PATHS='["/srv/docs"]' gives.
    settings = knowledge_settings(tmp_path / "data", allowed_paths='["/srv/docs"]')
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model) as app:
        config = app.plugins.loaded["knowledge"].context.config
        assert type(config).__name__ == KnowledgeSettings.__name__  # its own fresh import
        assert getattr(config, "allowed_paths", None) == ["/srv/docs"]


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"allowed_paths": '["docs"]'}, "allowed_paths"),
        ({"chroma_url": "ftp://x"}, "chroma_url"),
        ({"chunk_tokens": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"embedding_model": "/nowhere/model"}, "/nowhere/model"),
    ],
)
async def test_a_bad_setting_stops_start_up_naming_it(
    tmp_path: Path, values: dict[str, object], key: str
) -> None:
    settings = knowledge_settings(tmp_path / "data", **values)
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    with pytest.raises((ConfigError, ModelError), match=key):
        await App.start(settings, chat_model=model)
