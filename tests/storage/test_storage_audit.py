"""Story: an admin sets a 4,000-character system prompt; the audit row is always written."""

from __future__ import annotations

from pathlib import Path

from bot.app import App
from bot.config import Settings
from core.events import CommandEvent, Origin, Text
from tests.fakes import ScriptedChatModel, script


async def test_a_long_prompt_set_is_audited_in_full_detail(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        storage={"url": database_url},
        plugins={"disable_entry_points": True},
    )
    prompt = ("Speak like a lighthouse keeper. " * 200)[:4000]
    admin = Origin("discord", "g1", "c1", "ada", user_name="ada", is_admin=True)
    event = CommandEvent(admin, "prompt", subcommand="set", options={"text": prompt})
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model) as app:
        parts = [part async for part in app.router.handle(event)]
        assert parts == [Text("System prompt updated for this server.")]
        identity = await app.services.storage.identify(admin)
        entries = await app.services.storage.audit_entries(identity.server_pk)
    assert len(entries) == 1
    entry = entries[0]
    assert entry.action == "/prompt set" and entry.allowed
    assert len(entry.target) == 256 and entry.target.endswith("…")
    assert prompt.startswith(entry.target[:-1])
    assert entry.detail["options"]["text"] == prompt
