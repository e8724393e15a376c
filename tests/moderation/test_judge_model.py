"""The judge on a GGUF of its own (``judge = PATH``): the plugin loads it at set-up,
asks it when the classifier is unsure, and closes it on unload."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.factory import bundled_model_path
from bot.app import App
from tests.fakes import ScriptedChatModel, script
from tests.moderation.conftest import admin, moderation_settings

pytestmark = pytest.mark.model


async def test_a_judge_model_of_its_own_is_asked_when_the_classifier_is_unsure(
    tmp_path: Path,
) -> None:
    settings = moderation_settings(tmp_path / "data", judge=str(bundled_model_path()))
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model) as app:
        from plugins.moderation import _state

        assert _state.moderator is not None and _state.moderator.judge is not None
        judge = _state.moderator.judge
        policy = await admin(app, "/mod policy", server="judged")
        assert "judge on" in policy, policy
        said = await admin(app, "/mod check the weather is lovely today", server="judged")
        assert said.startswith(("Verdict: ", "Nothing found")), said
        assert judge.calls == 1  # unsure classifier: the judge was asked
        sure = await admin(app, "/mod check you fucking moron", server="judged")
        assert "from the builtin layer" in sure and judge.calls == 1, sure  # lists: sure
    assert _state.judge_model is None  # closed on unload
