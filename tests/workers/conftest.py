"""Shared fixtures for the diffusion worker tests: the tiny demo model, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.tiny import build_tiny_sd


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled random-weights SD 1.x folder, built offline into a session tmp dir."""
    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def engine(tiny_model: Path) -> Any:
    """One CPU engine on the tiny model for the whole session."""
    import torch

    from workers.engine import DiffusionEngine

    # One thread: the suite shares 2 cores with other jobs, and OpenMP's spinning barriers
    # turn a 0.1 s image into 8 s when the cores are oversubscribed.
    torch.set_num_threads(1)
    return DiffusionEngine.load(tiny_model, device="cpu")


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_children() -> Iterator[None]:
    """Worker children inherit one OpenMP thread (see ``engine``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield
