"""The LLM judge: constrained JSON in, a judgement or None out; None never means "allow
everything" — the previous layer's verdict stands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.moderation.classifier import Classifier
from plugins.moderation.config import ModerationSettings
from plugins.moderation.judge import SCHEMA, Judge, Judgement, guard_prompt, parse
from plugins.moderation.moderator import Moderator, Verdict
from plugins.moderation.store import ServerRules


def test_valid_answers_are_judgements() -> None:
    assert parse('{"verdict": "safe", "categories": []}') == Judgement(False)
    unsafe = parse('{"verdict": "unsafe", "categories": ["S10", "S1", "S10", "S99"]}')
    assert unsafe == Judgement(True, ("S10", "S1"))


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "unsafe",
        "{",
        "[]",
        '{"verdict": "maybe", "categories": []}',
        '{"verdict": "unsafe", "categories": []}',  # unsafe, but of what?
        '{"verdict": "unsafe", "categories": ["S99"]}',
        '{"verdict": "unsafe", "categories": "S1"}',
        '{"categories": ["S1"]}',
    ],
)
def test_anything_else_is_no_judgement(answer: str) -> None:
    assert parse(answer) is None


@given(st.text())
def test_parsing_never_raises(answer: str) -> None:
    parse(answer)


@given(st.text(max_size=5000))
def test_the_prompt_quotes_the_text_once_and_cannot_be_closed_early(text: str) -> None:
    prompt = guard_prompt(text, "User")
    assert prompt.count("<END CONVERSATION>") == 1
    assert prompt.index("<BEGIN CONVERSATION>") < prompt.index("<END CONVERSATION>")


class _Fixed:
    """A model answer, or a failure, or a hang."""

    def __init__(self, answer: str | BaseException | None) -> None:
        self.answer = answer

    async def __call__(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> str:
        assert schema is SCHEMA and "Task: Check" in messages[0]["content"]
        if self.answer is None:
            await asyncio.sleep(3600)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return str(self.answer)


def _moderator(score: float, answer: str | BaseException | None) -> Moderator:
    def predict(texts: list[str]) -> Sequence[float]:
        return [score] * len(texts)

    return Moderator(Classifier(predict), Judge(_Fixed(answer), timeout_s=0.2))


async def _check(moderator: Moderator, text: str = "a borderline message") -> Verdict | None:
    settings = ModerationSettings(judge="main")
    return await moderator.check(text, ServerRules(), settings, server_pk=1)


async def test_an_unsure_classifier_asks_the_judge_which_has_the_last_word() -> None:
    unsafe = json.dumps({"verdict": "unsafe", "categories": ["S10"]})
    assert await _check(_moderator(0.6, unsafe)) == Verdict("judge", "S10", 1.0, "S10")
    assert await _check(_moderator(0.6, '{"verdict": "safe", "categories": []}')) is None


@pytest.mark.parametrize("answer", ["not json", RuntimeError("model crashed"), None])
async def test_a_judge_that_fails_leaves_the_classifier_verdict(
    answer: str | BaseException | None,
) -> None:
    moderator = _moderator(0.85, answer)
    assert await _check(moderator) == Verdict("classifier", "profanity", 0.85)
    assert moderator.judge is not None and moderator.judge.invalid == 1


async def test_a_confident_classifier_does_not_wait_for_the_judge() -> None:
    moderator = _moderator(0.97, None)  # the judge would hang
    assert await _check(moderator) == Verdict("classifier", "profanity", 0.97)


@pytest.mark.model
async def test_the_bundled_model_answers_in_the_required_shape() -> None:
    from agents.config import LLMSettings
    from agents.factory import build_chat_model
    from agents.toolcall import GrammarToolChatModel

    model = await asyncio.to_thread(build_chat_model, LLMSettings(n_ctx=2048))
    assert isinstance(model, GrammarToolChatModel)
    try:

        async def complete(messages: list[dict[str, Any]], schema: dict[str, Any]) -> str:
            return await model.complete_json(messages, schema, max_tokens=48)

        answer = await complete([{"role": "user", "content": guard_prompt("hi", "User")}], SCHEMA)
        data = json.loads(answer)
        assert data["verdict"] in ("safe", "unsafe") and isinstance(data["categories"], list)
    finally:
        model.close()  # type: ignore[attr-defined]
