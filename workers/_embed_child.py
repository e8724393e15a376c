"""The embedding worker's child process: owns the sentence-transformers models.

``workers.embedding`` runs these functions in one spawned child process of a
``ProcessPoolExecutor``: :func:`load` is the pool's initializer, the others are the jobs.
This is the only module that imports torch or sentence_transformers for embeddings, and
only inside :func:`load`, so that the bot process can import this module to name its
functions without loading torch.

It never downloads anything (the Hugging Face hub is switched offline before the import)
and never decides about retries or errors shown to anyone (the parent does).
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass
class _Models:
    embedder: Any = None
    reranker: Any = None
    error: str | None = None


_models = _Models()


def load(model_path: str, reranker_path: str | None, device: str, threads: int) -> None:
    """Initializer of the child: load the models once, before any job runs.

    A failure is kept, not raised: a raising initializer breaks the pool with no message,
    while :func:`info` sends this one back to the parent.

    Args:
        model_path: A local sentence-transformers folder.
        reranker_path: A local cross-encoder folder, or ``None``.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        threads: torch's intra-op threads (and the tokenizer's).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers' "Loading weights" bar
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    # OpenMP threads that spin while they wait stall for hundreds of ms when the bot or
    # another process holds a core (a 12 ms query took 500 ms with 2 threads here).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        import tqdm  # type: ignore[import-untyped]
        from sentence_transformers import CrossEncoder, SentenceTransformer

        # tqdm's default lock is a named semaphore, which a killed child leaks (the
        # resource tracker then warns at exit); a thread lock is all one process needs.
        tqdm.tqdm.set_lock(threading.RLock())

        torch.set_num_threads(threads)
        _models.embedder = SentenceTransformer(model_path, device=device)
        if reranker_path is not None:
            _models.reranker = CrossEncoder(reranker_path, device=device)
    except Exception as exc:
        _models.error = f"{type(exc).__name__}: {exc}"


def info() -> tuple[int, int, int]:
    """``(dimensions, max_seq_length, pid)`` of the loaded embedder.

    Raises:
        RuntimeError: The models could not be loaded; the message says why.
    """
    embedder = _embedder()
    # sentence-transformers 5.x renamed the method; keep the old name for 3.x and 4.x.
    dimension = getattr(embedder, "get_embedding_dimension", None)
    dimensions = (dimension or embedder.get_sentence_embedding_dimension)()
    return int(dimensions), int(embedder.max_seq_length), os.getpid()


def embed(texts: list[str], batch_size: int) -> NDArray[Any]:
    """Unit-length vectors of ``texts``, one row each, as a float32 array.

    An array pickles ~3x faster than lists of floats and crosses the pipe in half the
    bytes; the parent turns rows into lists.
    """
    return _embedder().encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def rerank(query: str, passages: list[str]) -> list[float]:
    """One cross-encoder score per passage, in order; higher is better."""
    if _models.reranker is None:
        raise RuntimeError(_models.error or "no re-ranking model is loaded")
    scores = _models.reranker.predict(
        [(query, passage) for passage in passages], show_progress_bar=False
    )
    return [float(score) for score in scores]


def _embedder() -> Any:
    if _models.embedder is None:
        raise RuntimeError(_models.error or "the embedding model is not loaded")
    return _models.embedder
