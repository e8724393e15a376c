"""Fixtures for the knowledge-base stories: a real App (SQLite in a temp dir, the built-in
plugins, the bundled embedding model in its worker process, an embedded chromadb) and
helpers that send ``/kb`` commands with attached files the way adapters do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import App
from bot.config import Settings
from core.events import Attachment, CommandEvent, Error, ReplyPart, Text
from plugins.knowledge.service import KnowledgeBase
from tests.core.conftest import collect, isolated_settings, origin
from tests.fakes import ScriptedChatModel, script
from tests.storage.conftest import (  # noqa: F401  (the storage stories' two-backend fixtures)
    backend_url,
    database_url,
    make_origin,
    pg_database,
)

DOCS = Path(__file__).parent.parent / "data" / "knowledge" / "docs"


def knowledge_settings(data_dir: Path, **config: Any) -> Settings:
    """Default settings with state under ``data_dir`` and no ATELIER_* from outside."""
    return isolated_settings(data_dir, config={"knowledge": config})


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one folder the console's ``/kb add PATH`` may read."""
    return tmp_path_factory.mktemp("allowed")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory, allowed: Path) -> AsyncIterator[App]:
    """One started bot for a module's stories (each story uses servers of its own)."""
    settings = knowledge_settings(
        tmp_path_factory.mktemp("kb") / "data", allowed_paths=[str(allowed)], max_upload_mb=1.0
    )
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model) as started:
        yield started


def base(app: App) -> KnowledgeBase:
    """The running plugin's knowledge base."""
    from plugins.knowledge import _state

    assert _state.base is not None
    return _state.base


def attachment(name: str, data: bytes) -> Attachment:
    """A file sent with a command, fetched on demand like an adapter's."""

    async def fetch() -> bytes:
        return data

    return Attachment(name, size=len(data), fetch=fetch)


def doc(name: str) -> Attachment:
    """One of the labelled set's documents as an attachment."""
    return attachment(name, (DOCS / name).read_bytes())


async def kb(
    app: App, line: str, *files: Attachment, admin: bool = True, **who: Any
) -> list[ReplyPart]:
    """Every part of the reply to ``/kb LINE`` with ``files`` attached."""
    who.setdefault("user", "admin" if admin else "member")
    event = CommandEvent(origin(admin=admin, **who), "kb", line, attachments=files)
    return await collect(app, event)


def text_of(parts: list[ReplyPart]) -> str:
    """The reply's final text or error message."""
    for part in reversed(parts):
        if isinstance(part, Text):
            return part.text
        if isinstance(part, Error):
            return part.message
    raise AssertionError(f"no text in {parts}")
