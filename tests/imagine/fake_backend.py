"""A fake image back end: the ``workers.api.ImageBackend`` contract, in process.

It makes small solid-colour PNGs whose colour follows the seed (so equal seeds give equal
files), reports every step, and can be told to hold jobs (after the first step, so they
count as running), to fail them, or to go slowly. A test hands it to the app:
``App.start(settings, chat_model=..., image_backend=FakeImageBackend())``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

from PIL import Image

from workers.api import (
    Failed,
    Finished,
    GeneratedImage,
    ImageRequest,
    JobUpdate,
    Queued,
    Started,
    Step,
)
from workers.pngmeta import output_size


def solid_png(seed: int, width: int, height: int) -> bytes:
    """A PNG of one colour derived from ``seed``."""
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 173 % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


class FakeImageBackend:
    """In-process ``ImageBackend`` with switches for holding, failing and slowness."""

    def __init__(
        self,
        *,
        description: str = "fake test back end",
        hold: bool = False,
        fail: str | None = None,
        step_delay: float = 0.0,
    ) -> None:
        """``hold``: jobs wait after step 1 until ``release()``; ``fail``: jobs fail so."""
        self.description = description
        self.hold = hold
        self.fail = fail
        self.step_delay = step_delay
        self.submitted: list[ImageRequest] = []
        self.cancelled: list[str] = []
        self.started = False
        self.closed = False
        self._wakers: dict[str, asyncio.Event] = {}
        self._cancelled: set[str] = set()

    async def start(self) -> None:
        """Nothing to start (a closed fake may start again: the plugin can be reloaded)."""
        self.started = True
        self.closed = False

    async def close(self) -> None:
        """Jobs still waiting end as failed."""
        self.closed = True
        for waker in self._wakers.values():
            waker.set()

    def release(self) -> None:
        """Let held jobs (and later ones) run to the end."""
        self.hold = False
        for waker in self._wakers.values():
            waker.set()

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that is in this back end and not over."""
        waker = self._wakers.get(job_id)
        if waker is None or job_id in self._cancelled:
            return False
        self._cancelled.add(job_id)
        self.cancelled.append(job_id)
        waker.set()
        return True

    async def health(self) -> dict[str, Any]:
        """Facts for operators."""
        return {"ok": not self.closed, "jobs": len(self._wakers)}

    async def submit(self, request: ImageRequest) -> AsyncIterator[JobUpdate]:
        """Queued, Started, one Step per step, then Finished (or Failed)."""
        job_id = request.job_id
        self.submitted.append(request)
        self._wakers[job_id] = asyncio.Event()
        try:
            yield Queued(job_id, 0)
            yield Started(job_id, "fake-worker")
            for step in range(1, request.steps + 1):
                await asyncio.sleep(self.step_delay)
                if step == 2:
                    await self._wait_while_held(job_id)
                ended = self._ended(job_id)
                if ended is not None:
                    yield ended
                    return
                eta = (request.steps - step) * self.step_delay
                yield Step(job_id, step, request.steps, eta)
            if self.fail is not None:
                yield Failed(job_id, self.fail)
                return
            yield Finished(job_id, self._images(request), "fake-worker", 0.01)
        finally:
            self._wakers.pop(job_id, None)

    async def _wait_while_held(self, job_id: str) -> None:
        waker = self._wakers[job_id]
        while self.hold and not self.closed and job_id not in self._cancelled:
            await waker.wait()
            waker.clear()

    def _ended(self, job_id: str) -> Failed | None:
        if job_id in self._cancelled:
            return Failed(job_id, "Cancelled.", cancelled=True)
        if self.closed:
            return Failed(job_id, "The fake back end was closed.")
        return None

    def _images(self, request: ImageRequest) -> tuple[GeneratedImage, ...]:
        width, height = output_size(request)  # as a real worker: img2img × upscale
        return tuple(
            GeneratedImage(
                solid_png(request.seed + i, width, height), request.seed + i, width, height
            )
            for i in range(request.count)
        )
