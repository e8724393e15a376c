"""What the retrieval engine needs from a model, without knowing where the model runs.

The bot process never imports torch (STYLE rule 2): the embedding and re-ranking models
run in a worker process (``workers.embedding``), which implements these protocols. Tests
and benchmarks may pass any object that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    """Turns texts into unit-length vectors; similar meaning, near vectors."""

    @property
    def dimensions(self) -> int:
        """The length of every vector this embedder returns."""
        ...

    @property
    def model_name(self) -> str:
        """A stable name of the model (stored with the vectors; a change means re-embed)."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order (batched by the implementation)."""
        ...


class Reranker(Protocol):
    """Scores how well each passage answers a query (a cross-encoder)."""

    async def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        """One score per passage, in order; higher is better."""
        ...
