"""Group commit: many concurrent callers' inserts, one transaction (private to ``storage``).

Callers ``submit`` rows and wait; one background task drains whatever is queued, inserts
it all in one transaction, then wakes each caller. So a caller returns only once its rows
are committed, yet a thousand concurrent chats cost a handful of commits, not a thousand.

On a SQLite file the writer holds one connection of its own in a thread of its own
(``storage._engine.writer_engine``): a flush is then one hand-off to that thread, not a
connection checkout, cursor, execute, commit and pool reset each waiting for the event loop.
PostgreSQL (and in-memory SQLite) write through the shared async engine.

It must never report success before the commit, and never leave a caller waiting forever:
if the writer stops for any reason, every queued caller gets a ``StorageError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import StorageError
from storage._engine import writer_engine

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Most callers folded into one transaction (keeps a transaction's size bounded)."""


@dataclass(slots=True)
class _Pending:
    rows: Sequence[dict[str, Any]]
    done: asyncio.Future[None]


class GroupCommitWriter:
    """Inserts rows into one table through a single background task, in batches."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self._engine = engine
        self._table = table
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._accepting = True  # new callers welcome
        self._stopped = False  # the queue is shut: nothing more will be written
        self._callers = 0
        self._idle = asyncio.Event()
        self._own_engine = writer_engine(engine)  # None: write through ``engine``
        self._thread: ThreadPoolExecutor | None = None
        self._held: Connection | None = None  # touched only in ``self._thread``

    def start(self) -> None:
        """Start the background task (on the running event loop)."""
        if self._own_engine is not None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="storage-writer")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="storage-writer")

    @contextlib.contextmanager
    def caller(self) -> Iterator[None]:
        """Hold around preparing and submitting a write: ``close`` waits for every holder."""
        if not self._accepting or self._task is None:
            raise StorageError("storage is closed")
        self._callers += 1
        try:
            yield
        finally:
            self._callers -= 1
            if not self._callers:
                self._idle.set()

    async def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows``; return once they are committed, or raise ``StorageError``.

        Cancelling the caller before its batch starts drops its rows; after that, the rows
        may still be written.
        """
        if self._stopped or self._task is None:
            raise StorageError("storage is closed")
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(rows, done))
        await done

    async def close(self) -> None:
        """Refuse new callers, write everything current callers submit, stop the task."""
        self._accepting = False
        while self._callers:
            self._idle.clear()
            await self._idle.wait()
        if not self._stopped:
            self._stopped = True
            if self._task is not None:
                self._queue.put_nowait(None)
                await self._task
        await self._release()

    async def _run(self) -> None:
        batch: list[_Pending] = []
        try:
            stopping = False
            while not stopping:
                first = await self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                await self._flush(batch)
        finally:
            # Reached early only if this task is cancelled: nobody may wait forever.
            self._accepting = False
            self._stopped = True
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    batch.append(item)
            _fail(batch, None)

    async def _flush(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.done.done()]
        try:
            await self._insert(live)
        except IntegrityError as exc:
            if len(live) == 1:
                _fail(live, exc)
                return
            # One caller's bad rows (e.g. a deleted conversation) must not fail the others.
            for pending in live:
                await self._flush([pending])
        except Exception as exc:
            log.warning("group commit of %d callers failed: %s", len(live), exc)
            _fail(live, exc)
        else:
            for pending in live:
                if not pending.done.done():
                    pending.done.set_result(None)

    async def _insert(self, batch: list[_Pending]) -> None:
        rows = [row for pending in batch for row in pending.rows]
        if not rows:
            return
        if self._thread is None or self._own_engine is None:
            async with self._engine.begin() as conn:
                await conn.execute(self._table.insert(), rows)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._insert_held, self._own_engine, rows)

    def _insert_held(self, engine: Engine, rows: list[dict[str, Any]]) -> None:
        """In the writer's thread: one transaction on the connection it holds."""
        if self._held is None:
            self._held = engine.connect()
        try:
            with self._held.begin():
                self._held.execute(self._table.insert(), rows)
        except IntegrityError:
            raise  # the rows were bad, not the connection (rolled back, still usable)
        except BaseException:
            # A connection in an unknown state is not reused: the next flush opens another.
            self._close_held()
            raise

    async def _release(self) -> None:
        """Close the held connection (in its thread, after any write still running there)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(thread, self._close_held)
        finally:
            thread.shutdown(wait=False)
            if self._own_engine is not None:
                self._own_engine.dispose()

    def _close_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):
                held.close()


def _fail(batch: list[_Pending], cause: BaseException | None) -> None:
    """Wake every still-waiting caller in ``batch`` with its own ``StorageError``."""
    for pending in batch:
        if pending.done.done():
            continue
        reason = f"could not store messages: {cause}" if cause else "storage writer stopped"
        error = StorageError(reason)
        error.__cause__ = cause
        pending.done.set_exception(error)
