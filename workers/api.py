"""The contract between the bot and an image back end (local process or Celery pool).

Torch-free on purpose: the bot process imports this module, never ``workers.engine``.
A back end takes ``ImageRequest``s and streams ``JobUpdate``s for each; it returns PNG
bytes, and the bot (the ``imagine`` plugin) stores files and job rows. Jobs whose
``batch_key`` is equal may be generated together in one batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """One generation job: ``count`` images from ``seed``, ``seed + 1``, ...

    With ``init_image`` (a PNG path readable by the worker's host, or PNG bytes in
    ``init_png``) it is img2img with ``strength``; ``upscale`` > 1 first resizes the init
    image by that factor ("hires fix": 2× img2img on the same model).
    """

    job_id: str
    prompt: str
    negative: str = ""
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg: float = 7.0
    seed: int = 0
    count: int = 1
    scheduler: str = "euler"
    init_png: bytes | None = field(default=None, repr=False)
    strength: float = 0.6
    upscale: float = 1.0

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Jobs with equal keys can share one pipeline call."""
        img2img = self.init_png is not None
        return (
            self.width,
            self.height,
            self.steps,
            self.scheduler,
            self.cfg,
            img2img,
            self.strength if img2img else None,
            self.upscale,
        )


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One finished image."""

    png: bytes = field(repr=False)
    seed: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Queued:
    """Waiting in the back end; ``position`` 0 means next."""

    job_id: str
    position: int


@dataclass(frozen=True, slots=True)
class Started:
    """A worker took the job (``batch_size`` jobs run together)."""

    job_id: str
    worker: str
    batch_size: int = 1


@dataclass(frozen=True, slots=True)
class Step:
    """Denoising progress: ``step`` of ``total`` done; ``eta_s`` when known."""

    job_id: str
    step: int
    total: int
    eta_s: float | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """The job's images, in seed order."""

    job_id: str
    images: tuple[GeneratedImage, ...]
    worker: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Failed:
    """The job failed (or was cancelled); ``message`` is fit for users."""

    job_id: str
    message: str
    cancelled: bool = False


JobUpdate = Queued | Started | Step | Finished | Failed


class ImageBackend(Protocol):
    """Where images are made. Implementations: local child process, Celery pool, fakes."""

    description: str
    """Shown to users, e.g. "tiny random-weights demo model (it draws noise)"."""

    async def start(self) -> None:
        """Get ready (cheap: a local worker process starts on first use or preload)."""

    async def close(self) -> None:
        """Stop; jobs in flight fail with a clear message."""

    def submit(self, request: ImageRequest) -> AsyncIterator[JobUpdate]:
        """Run ``request``; yields updates and ends with exactly one Finished or Failed."""

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False if it is unknown or already over."""

    async def health(self) -> dict[str, Any]:
        """Liveness and facts for operators (device, model, queue length, restarts)."""
