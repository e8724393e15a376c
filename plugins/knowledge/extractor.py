"""Text extraction off the event loop, in a child process that can be killed.

Parsers have no overall time limit (pypdf spent 4.6 s on a 59 KB PDF of compressed
whitespace), and a thread cannot be stopped. Each upload is extracted in a spawned child
process; one that runs past its time limit is killed and a fresh child serves the next
upload. This module never parses anything itself (``rag.extract`` does, in the child).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from core.errors import InputRejected
from rag.extract import Document, extract, safe_title

log = logging.getLogger(__name__)


class Extractor:
    """Runs ``rag.extract.extract`` in a child process with a time limit."""

    def __init__(self, timeout_s: float) -> None:
        """Extract within ``timeout_s`` seconds per file (the child starts on first use)."""
        self.timeout_s = timeout_s
        self._pool: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()  # one file at a time: the child has one core's work

    async def extract(self, filename: str, data: bytes, *, max_bytes: int) -> Document:
        """The document's text sections, or ``InputRejected`` saying what was wrong.

        Raises:
            InputRejected: The file is not acceptable (see ``rag.extract``), or it took
                longer than the time limit to read.
        """
        async with self._lock:
            pool = self._pool or self._start()
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(pool, _extract, filename, data, max_bytes)
            try:
                return await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                self._kill()
                raise InputRejected(
                    f"Reading {safe_title(filename)} took longer than "
                    f"{self.timeout_s:g} s; it was stopped."
                ) from None
            except BrokenProcessPool:
                self._kill()
                raise InputRejected(
                    f"Reading {safe_title(filename)} crashed the reader; it was stopped."
                ) from None

    def close(self) -> None:
        """Stop the child process (idempotent)."""
        self._kill()

    def _start(self) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        return self._pool

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # The executor has no public way to stop a running call: kill its process.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)


def _extract(filename: str, data: bytes, max_bytes: int) -> Document:
    """Run in the child: the extraction itself."""
    return extract(filename, data, max_bytes=max_bytes)
