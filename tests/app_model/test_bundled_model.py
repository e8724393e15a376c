"""Stories with the real bundled model (SmolLM2-135M-Instruct) behind the whole App.

Greedy sampling and a fixed seed keep each answer the same from run to run; the asserts
are on the answer itself: an answer of the model's own, a tool result that reaches the
model as a tool message and comes back in the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from pydantic import Field

from agents.chat_llamacpp import ChatLlamaCpp
from agents.engine import LlamaEngine
from agents.factory import BUNDLED_CHAT_FORMAT, bundled_model_path
from bot.app import App
from bot.config import Settings
from core.events import MessageEvent, Origin, Progress, Text

pytestmark = pytest.mark.model

WHO = Origin("console", "s1", "c1", "u1", user_name="u1")


class RecordingChatLlamaCpp(ChatLlamaCpp):
    """The real model; it also keeps the messages of each call (for the asserts)."""

    calls: list[list[BaseMessage]] = Field(default_factory=list)
    forced: str | None = None  # a tool name: the first tool-enabled step must call it

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        if self.forced is not None and "tool_choice" not in kwargs:
            kwargs["tool_choice"] = self.forced
            self.forced = None  # only the first step is forced; the rest is the model's
        return super().bind_tools(tools, **kwargs)

    async def _astream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(list(messages))
        async for chunk in super()._astream(messages, *args, **kwargs):
            yield chunk


def _model(**fields: Any) -> RecordingChatLlamaCpp:
    engine = LlamaEngine.load(
        bundled_model_path(),
        n_ctx=2048,
        n_gpu_layers=None,
        n_threads=2,
        n_batch=256,
        chat_format=BUNDLED_CHAT_FORMAT,
        seed=7,
    )
    return RecordingChatLlamaCpp(
        engine=engine,
        chat_format=BUNDLED_CHAT_FORMAT,
        temperature=0.0,
        max_tokens=64,
        seed=7,
        **fields,
    )


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", plugins={"disable_entry_points": True})


async def _turn(app: App, text: str) -> list[Any]:
    return [part async for part in app.router.handle(MessageEvent(WHO, text))]


async def test_a_question_gets_an_answer_of_the_models_own(tmp_path: Path) -> None:
    async with await App.start(_settings(tmp_path), chat_model=_model()) as app:
        parts = await _turn(app, "What is the capital of France?")
    answer = parts[-1]
    assert isinstance(answer, Text), parts
    assert "Paris" in answer.text, answer.text
    assert not answer.text.lower().startswith(("calling tool", "sorry, i could not"))


async def test_a_forced_calculator_call_reaches_the_model_and_the_answer(tmp_path: Path) -> None:
    model = _model(forced="calculate")
    async with await App.start(_settings(tmp_path), chat_model=model) as app:
        parts = await _turn(app, "What is 12 times 7?")
    assert Progress("using calculate") in parts
    answer = parts[-1]
    assert isinstance(answer, Text)
    told = [m for call in model.calls for m in call if "84" in str(m.content)]
    assert told, "the tool's result never reached the model"
    assert "84" in answer.text, answer.text
