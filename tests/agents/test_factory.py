"""Turning ``[llm]`` settings into a chat model."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.chat_llamacpp import ChatLlamaCpp
from agents.chat_openai import ChatOpenAICompatible
from agents.config import LLMSettings
from agents.factory import build_chat_model, resolve_model_path
from core.errors import ModelError


def _settings(**llm: object) -> LLMSettings:
    return LLMSettings(**llm)  # type: ignore[arg-type]


def test_a_missing_model_file_is_a_model_error_naming_path_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"

    with pytest.raises(ModelError, match=r"model file not found: .*nope\.gguf \(llm\.model_path\)"):
        resolve_model_path(_settings(model_path=str(missing)))


def test_a_home_relative_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")

    assert resolve_model_path(_settings(model_path="~/m.gguf")) == tmp_path / "m.gguf"


def test_no_configured_path_means_the_bundled_instruct_model() -> None:
    path = resolve_model_path(_settings())
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    with path.open("rb") as gguf:
        assert gguf.read(4) == b"GGUF"
    assert _settings().chat_format == "chatml"  # the template SmolLM2 was trained on


def test_the_openai_backend_builds_a_client_without_connecting() -> None:
    model = build_chat_model(_settings(backend="openai", base_url="http://127.0.0.1:1/v1"))

    assert isinstance(model, ChatOpenAICompatible)
    assert model.base_url == "http://127.0.0.1:1/v1"


def test_a_corrupt_model_file_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")

    with pytest.raises(ModelError, match=r"bad\.gguf"):
        build_chat_model(_settings(model_path=str(bad), n_ctx=256))


@pytest.mark.model
def test_the_llamacpp_backend_loads_the_bundled_model() -> None:
    model = build_chat_model(_settings(n_ctx=256, n_threads=1, max_tokens=8))

    assert isinstance(model, ChatLlamaCpp)
    assert model.context_window == 256
    model.engine.close()


@pytest.mark.model
@pytest.mark.parametrize(
    ("tool_pass", "one_pass"), [("auto", False), ("one", True), ("choice", False)]
)
def test_a_tiny_model_takes_the_choice_step_unless_told_otherwise(
    tool_pass: str, one_pass: bool
) -> None:
    model = build_chat_model(_settings(n_ctx=256, n_threads=1, tool_pass=tool_pass, parallel=1))

    assert isinstance(model, ChatLlamaCpp)
    assert model.engine.n_params < 1_000_000_000  # the bundled SmolLM2-135M
    assert model.one_pass is one_pass
    model.engine.close()
