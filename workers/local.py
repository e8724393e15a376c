"""The local image back end: a supervised child process that owns the device and the model.

Imported by the bot process, so it must never import torch or diffusers (the child,
``workers._child``, does). Commands go to the child on one multiprocessing queue and
updates come back on another; a reader thread per child hands them to the event loop, so
nothing here blocks the loop. When the child dies it is restarted and the jobs it was
running are retried once; the queues are fresh for every child, since a process killed
mid-write can leave a queue's lock held forever.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelError
from workers._child import ChildConfig
from workers._child import main as child_main
from workers.api import Failed, Finished, ImageRequest, JobUpdate, Started
from workers.config import ImagineSettings
from workers.tiny import DEMO_DESCRIPTION, describe_model
from workers.validate import RequestRejected, ResultRejected, check_images, validate_request

log = logging.getLogger(__name__)

_CRASHED_TWICE = "the image worker crashed twice on this job"
_SHUT_DOWN = "the image worker was shut down"
_NOT_LOADED = "the image model could not be loaded"
_STOP_GRACE_S = 10.0


@dataclass
class _Job:
    request: ImageRequest
    updates: asyncio.Queue[JobUpdate] = field(default_factory=asyncio.Queue)
    started: bool = False
    crashes: int = 0
    cancelled: bool = False
    done: bool = False


class _Child:
    """One incarnation of the worker process, with its own queues and reader thread."""

    def __init__(self, config: ChildConfig) -> None:
        context = mp.get_context("spawn")
        self.inbox: Any = context.Queue()
        self.outbox: Any = context.Queue()
        self.process = context.Process(
            target=child_main, args=(config, self.inbox, self.outbox), daemon=True
        )
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stopping = threading.Event()
        self.device: str | None = None
        self._reader: threading.Thread | None = None

    def start(self, on_message: Any, on_exit: Any) -> None:
        self.process.start()
        loop = asyncio.get_running_loop()
        self._reader = threading.Thread(
            target=self._read_safely,
            args=(loop, on_message, on_exit),
            name="image-worker-reader",
            daemon=True,
        )
        self._reader.start()

    def send(self, message: tuple[Any, ...]) -> None:
        self.inbox.put(message)

    def _read_safely(self, loop: asyncio.AbstractEventLoop, on_message: Any, on_exit: Any) -> None:
        try:
            self._read(loop, on_message, on_exit)
        except (ValueError, RuntimeError):
            if not self.stopping.is_set():  # else: queues closed / loop gone during shutdown
                raise

    def _read(self, loop: asyncio.AbstractEventLoop, on_message: Any, on_exit: Any) -> None:
        while not self.stopping.is_set():
            try:
                message = self.outbox.get(timeout=0.1)
            except queue.Empty:
                if not self.process.is_alive():
                    self._drain(loop, on_message)
                    loop.call_soon_threadsafe(on_exit, self)
                    return
                continue
            except (EOFError, OSError):
                loop.call_soon_threadsafe(on_exit, self)
                return
            loop.call_soon_threadsafe(on_message, self, message)

    def _drain(self, loop: asyncio.AbstractEventLoop, on_message: Any) -> None:
        while True:
            try:
                message = self.outbox.get(timeout=0.05)
            except (queue.Empty, EOFError, OSError):
                return
            loop.call_soon_threadsafe(on_message, self, message)

    def discard(self) -> None:
        """Stop reading and forget the queues without waiting on a child that may be gone."""
        self.stopping.set()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)
        for q in (self.inbox, self.outbox):
            q.cancel_join_thread()
            q.close()


class LocalImageBackend:
    """``ImageBackend`` on a child process of this bot (multiprocessing, spawn context)."""

    def __init__(
        self,
        settings: ImagineSettings,
        model_path: Path,
        *,
        description: str | None = None,
        build_demo: bool = False,
        _crash_on_prompt: str | None = None,
        _corrupt_on_prompt: str | None = None,
    ) -> None:
        """``build_demo``: the child builds the bundled tiny demo at ``model_path`` if absent
        (torch stays out of the bot process)."""
        if description is None:
            description = DEMO_DESCRIPTION if build_demo else describe_model(Path(model_path))
        self.description = description
        self._settings = settings
        self._config = ChildConfig(
            model_path=str(model_path),
            device=settings.device,
            dtype=settings.dtype,
            torch_compile=settings.torch_compile,
            channels_last=settings.channels_last,
            max_batch=settings.max_batch,
            batch_window_ms=settings.batch_window_ms,
            worker_name="local",
            build_demo=build_demo,
            crash_on_prompt=_crash_on_prompt,
            corrupt_on_prompt=_corrupt_on_prompt,
        )
        self._child: _Child | None = None
        self._jobs: dict[str, _Job] = {}
        self._restarts = 0
        self._fatal: str | None = None
        self._load_crashes = 0
        self._closing = False

    async def start(self, *, preload: bool | None = None) -> None:
        """Start the child now when preloading (and wait for the model); else on first use.

        Raises ModelError when a preloaded model cannot be loaded.
        """
        if self._settings.preload if preload is None else preload:
            child = self._ensure_child()
            await asyncio.shield(child.ready)
            if self._fatal is not None:
                raise ModelError(self._fatal)

    async def close(self) -> None:
        """Fail jobs in flight, ask the child to stop, and kill it if it does not."""
        self._closing = True
        for job in list(self._jobs.values()):
            self._finish(job, Failed(job.request.job_id, _SHUT_DOWN))
        child, self._child = self._child, None
        if child is None:
            return
        if child.process.is_alive():
            child.send(("stop",))
            await asyncio.to_thread(child.process.join, _STOP_GRACE_S)
            if child.process.is_alive():
                child.process.kill()
                await asyncio.to_thread(child.process.join, _STOP_GRACE_S)
        await asyncio.to_thread(child.discard)

    async def submit(self, request: ImageRequest) -> AsyncIterator[JobUpdate]:
        """Run ``request``; yields updates and ends with exactly one Finished or Failed.

        A request beyond the ``[imagine]`` limits fails at once (the same check a Celery
        worker makes); a result that is not the requested PNGs fails the job.
        """
        if request.job_id in self._jobs:
            raise ValueError(f"job {request.job_id!r} is already submitted")
        job = _Job(request)
        if self._closing or self._fatal is not None:
            yield Failed(request.job_id, _SHUT_DOWN if self._closing else _NOT_LOADED)
            return
        try:
            validate_request(self._settings, request)
        except RequestRejected as exc:
            log.warning("refused job %r: %s", request.job_id, exc)
            yield Failed(request.job_id, f"the image worker refused this request: {exc}")
            return
        self._jobs[request.job_id] = job
        self._ensure_child().send(("submit", request))
        try:
            async for update in self._updates(job):
                yield update
        finally:
            if not job.done:
                await self.cancel(request.job_id)
            self._jobs.pop(request.job_id, None)

    async def _updates(self, job: _Job) -> AsyncIterator[JobUpdate]:
        timeout = self._settings.job_timeout_s
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            wait = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                update = await asyncio.wait_for(job.updates.get(), wait)
            except TimeoutError:
                await self.cancel(job.request.job_id)
                message = f"the image job ran past its time limit ({timeout:g} s)"
                update = Failed(job.request.job_id, message)
                job.done = True
            if isinstance(update, Started) and deadline is None:
                deadline = loop.time() + timeout
            if isinstance(update, Finished):
                update = await _checked(job.request, update)
            yield update
            if isinstance(update, Finished | Failed):
                return

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False if it is unknown or already over."""
        job = self._jobs.get(job_id)
        if job is None or job.done or job.cancelled:
            return False
        job.cancelled = True
        if self._child is not None:
            self._child.send(("cancel", job_id))
        return True

    async def health(self) -> dict[str, Any]:
        """Liveness and facts for operators."""
        child = self._child
        alive = child is not None and child.process.is_alive()
        return {
            "alive": alive,
            "pid": child.process.pid if child is not None else None,
            "restarts": self._restarts,
            "device": child.device if child is not None else None,
            "model": self.description,
            "queued": sum(not j.started and not j.done for j in self._jobs.values()),
        }

    def _ensure_child(self) -> _Child:
        if self._child is None:
            self._child = _Child(self._config)
            self._child.start(self._on_message, self._on_exit)
        return self._child

    def _finish(self, job: _Job, update: Finished | Failed) -> None:
        if not job.done:
            job.done = True
            job.updates.put_nowait(update)

    def _on_message(self, child: _Child, message: tuple[Any, ...]) -> None:
        if child is not self._child:
            return
        kind = message[0]
        if kind == "ready":
            child.device, self.description = message[1], message[2]
            _resolve(child.ready)
        elif kind == "fatal":
            self._on_fatal(child, message[1])
        elif kind == "update":
            self._on_update(message[1])

    def _on_update(self, update: JobUpdate) -> None:
        job = self._jobs.get(update.job_id)
        if job is None or job.done:
            return
        if isinstance(update, Finished | Failed):
            self._finish(job, update)
            return
        if isinstance(update, Started):
            job.started = True
        job.updates.put_nowait(update)

    def _on_fatal(self, child: _Child, error: str) -> None:
        log.error("the image worker cannot load its model: %s", error)
        self._fatal = error
        _resolve(child.ready)
        for job in list(self._jobs.values()):
            self._finish(job, Failed(job.request.job_id, _NOT_LOADED))

    def _on_exit(self, child: _Child) -> None:
        if child is not self._child or self._closing:
            return
        child.discard()
        self._child = None
        if self._fatal is not None:
            return
        if child.device is None:
            self._load_crashes += 1
            if self._load_crashes >= 2:
                self._on_fatal(
                    child, f"the worker died twice while loading {self._config.model_path}"
                )
                return
        _resolve(child.ready)
        self._restarts += 1
        log.warning(
            "the image worker (pid %s) died with exit code %s; restarting",
            child.process.pid,
            child.process.exitcode,
        )
        self._resubmit()

    def _resubmit(self) -> None:
        retry = []
        for job in list(self._jobs.values()):
            if job.done:
                continue
            if job.cancelled:
                self._finish(job, Failed(job.request.job_id, "cancelled", cancelled=True))
                continue
            if job.started:
                job.crashes += 1
                job.started = False
            if job.crashes >= 2:
                self._finish(job, Failed(job.request.job_id, _CRASHED_TWICE))
            else:
                retry.append(job)
        if retry:
            child = self._ensure_child()
            for job in retry:
                child.send(("submit", job.request))


async def _checked(request: ImageRequest, finished: Finished) -> Finished | Failed:
    """``finished`` if its images are the PNGs ``request`` asked for, else a failure."""
    try:
        await asyncio.to_thread(check_images, request, finished.images)
    except ResultRejected as exc:
        log.error("rejected the result of job %s: %s", request.job_id, exc)
        message = f"the image worker sent back an unusable result: {exc}"
        return Failed(request.job_id, message)
    return finished


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
