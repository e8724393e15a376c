"""The ``[llm]`` and ``[agent]`` settings: which model answers and how the agent uses it.

Declared here, beside the code that reads them; ``bot.config.Settings`` composes them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from agents.servers import split_urls
from core.config import Section


class LLMSettings(Section):
    """Which LLM answers, and how."""

    backend: Literal["llamacpp", "openai"] = "llamacpp"
    model_path: str = ""
    chat_format: str = "chatml"
    n_ctx: int = Field(default=4096, ge=256, le=1_048_576)
    n_gpu_layers: int | None = None
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=8)
    parallel: int = Field(default=4, ge=1, le=64)
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    temperature: float = Field(default=0.3, ge=0.0, le=5.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int = -1
    tool_calling: Literal["auto", "native", "grammar"] = "auto"
    tool_pass: Literal["auto", "one", "choice"] = "auto"
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "local"
    request_timeout_s: float = Field(default=300.0, gt=0)
    api_key: SecretStr | None = None

    @field_validator("base_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        urls = split_urls(value)
        if not urls:
            raise ValueError("base_url needs at least one server URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base_url: {url!r} is not an http(s) URL")
        return ", ".join(urls)


class AgentSettings(Section):
    """How the agent uses the LLM."""

    system_prompt: str = (
        "You are Atelier, a helpful assistant in a chat server. Answer briefly. "
        "Use a tool when it helps."
    )
    max_steps: int = Field(default=4, ge=1, le=32)
    tool_hints: bool = True
    history_messages: int = Field(default=40, ge=0, le=1000)
    context_reserve_tokens: int = Field(default=256, ge=0)
