"""A reply that crosses the line never reaches the user whole: the buffered outbound hook
holds the streamed answer and stops it where it turns abusive. (Its own module: it starts
a bot of its own, which re-imports the plugins.)"""

from __future__ import annotations

import pytest

from bot.app import App
from core.events import Error, TextDelta
from tests.fakes import ScriptedChatModel, script
from tests.moderation.conftest import moderation_settings, send


async def test_a_streamed_reply_that_crosses_the_line_never_reaches_the_user_whole(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    clean = "Here is a long and friendly answer about gardening and tomatoes. " * 6
    answer = clean + "You are a worthless piece of shit and everyone hates you. " + clean
    settings = moderation_settings(tmp_path_factory.mktemp("out") / "data")
    model = ScriptedChatModel(messages=script(answer, repeat=True))
    async with await App.start(settings, chat_model=model) as started:
        parts = await send(started, "tell me about tomatoes", server="out")
    streamed = "".join(p.text for p in parts if isinstance(p, TextDelta))
    assert "shit" not in streamed and streamed in answer, streamed
    assert isinstance(parts[-1], Error), parts[-1]
    assert parts[-1].message.startswith("The answer was withheld: it was flagged for profanity")
