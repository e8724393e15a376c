"""The dispatcher: hands queued jobs to the image back end and records what happens.

It keeps up to ``max_in_flight`` jobs submitted to the back end (twice its batch size, so
the worker can batch compatible jobs), takes the rest from the ``FairQueue`` in fair order,
consumes each job's updates, writes finished images, records status, timings, worker and
results in storage, and fans every update out to whoever follows the job (a command's
reply stream, the agent tool). Only this process's followers see updates; storage is what
other processes see, and storage wins: a job another process ended (cancelled) is
cancelled in the back end when it starts here, and a late result of such a job is deleted
instead of overwriting how it ended.

It never validates requests or enforces quotas (the service does that before enqueueing)
and never renders reply parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from core.errors import new_error_id
from plugins.imagine.files import ImageFiles
from plugins.imagine.jobs import JobStore
from plugins.imagine.queue import FairQueue
from workers.api import Failed, Finished, ImageBackend, ImageRequest, Queued, Started, Step

log = logging.getLogger(__name__)

STOPPED_MESSAGE = "The image service stopped; your job will run when it is back."


@dataclass(frozen=True, slots=True)
class Waiting:
    """Queued in this process, ``position`` jobs from the front (1 = next)."""

    job_id: str
    position: int


@dataclass(frozen=True, slots=True)
class Completed:
    """The job's images are stored: paths and seeds in order."""

    job_id: str
    paths: tuple[Path, ...]
    seeds: tuple[int, ...]
    worker: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Stopped:
    """The job ended without images (failed or cancelled), or this process stopped."""

    job_id: str
    message: str
    cancelled: bool = False


JobEvent = Waiting | Queued | Started | Step | Completed | Stopped
_PROGRESS = (Waiting, Queued, Step)


@dataclass(frozen=True, slots=True)
class Entry:
    """A job waiting in the fair queue."""

    job_id: str
    server_pk: int
    user_pk: int
    request: ImageRequest


class Follower:
    """One follower's events of one job; progress updates are coalesced (latest wins)."""

    def __init__(self) -> None:
        self._events: deque[JobEvent] = deque()
        self._ready = asyncio.Event()

    def put(self, event: JobEvent) -> None:
        """Add an event; a progress event replaces a pending progress event."""
        if (
            isinstance(event, _PROGRESS)
            and self._events
            and isinstance(self._events[-1], _PROGRESS)
        ):
            self._events[-1] = event
        else:
            self._events.append(event)
        self._ready.set()

    async def get(self, within: float | None = None) -> JobEvent | None:
        """The next event, or None when ``within`` seconds pass without one."""
        if not self._events:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), within)
            except TimeoutError:
                return None
        return self._events.popleft()


class Dispatcher:
    """Fair queue → back end → storage and followers; run ``run()`` as a task."""

    def __init__(
        self, backend: ImageBackend, store: JobStore, files: ImageFiles, *, max_in_flight: int
    ) -> None:
        """Dispatch to ``backend``, recording in ``store`` and ``files``."""
        self.backend = backend
        self._store = store
        self._files = files
        self._limit = max(1, max_in_flight)
        self._queue: FairQueue[Entry] = FairQueue()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._started: set[str] = set()
        self._followers: dict[str, list[Follower]] = {}
        self._wake = asyncio.Event()

    # ---- followers ---------------------------------------------------------------

    def follow(self, job_id: str) -> Follower:
        """Start receiving the job's events (call before ``enqueue`` to miss none)."""
        follower = Follower()
        self._followers.setdefault(job_id, []).append(follower)
        return follower

    def unfollow(self, job_id: str, follower: Follower) -> None:
        """Stop receiving the job's events."""
        followers = self._followers.get(job_id, [])
        if follower in followers:
            followers.remove(follower)
        if not followers:
            self._followers.pop(job_id, None)

    def _publish(self, event: JobEvent) -> None:
        for follower in self._followers.get(event.job_id, ()):
            follower.put(event)

    def _publish_positions(self) -> None:
        ahead = len(self._running) - len(self._started)  # submitted, not yet started
        for index, job_id in enumerate(self._queue.order()):
            if job_id in self._followers:
                self._publish(Waiting(job_id, ahead + index + 1))

    # ---- queue -------------------------------------------------------------------

    def enqueue(self, entry: Entry) -> None:
        """Queue a job (its row must already exist with status ``queued``)."""
        self._queue.push(entry.job_id, entry.server_pk, entry.user_pk, entry)
        self._publish_positions()
        self._wake.set()

    def is_running(self, job_id: str) -> bool:
        """Whether the job is submitted to the back end by this process."""
        return job_id in self._running

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job queued here or running here; False if this process has no such job."""
        if self._queue.remove(job_id) is not None:
            await self._store.mark_ended(job_id, "cancelled", "Cancelled.")
            self._publish(Stopped(job_id, "Cancelled.", cancelled=True))
            self._publish_positions()
            return True
        if job_id in self._running:
            return await self.backend.cancel(job_id)
        return False

    async def run(self) -> None:
        """Dispatch until cancelled; then stop the jobs in flight (they stay in storage)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self._fill()
        finally:
            await self._halt()

    def _fill(self) -> None:
        dispatched = False
        while len(self._running) < self._limit:
            taken = self._queue.pop()
            if taken is None:
                break
            job_id, entry = taken
            self._running[job_id] = asyncio.create_task(self._run_job(entry))
            dispatched = True
        if dispatched:
            self._publish_positions()

    async def _halt(self) -> None:
        """Cancel jobs in flight and tell followers; rows stay queued/running for recovery."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job_id in list(self._followers):
            self._publish(Stopped(job_id, STOPPED_MESSAGE))

    # ---- one job -----------------------------------------------------------------

    async def _run_job(self, entry: Entry) -> None:
        job_id = entry.job_id
        try:
            async for update in self.backend.submit(entry.request):
                if await self._record(entry, update):
                    return
            await self._fail(job_id, "The image back end stopped without finishing the job.")
        except asyncio.CancelledError:
            raise
        except Exception:
            error_id = new_error_id()  # the exception's text stays in the log
            log.exception("[%s] image job %s failed in the back end", error_id, job_id)
            await self._fail(job_id, f"The image back end failed (error id {error_id}).")
        finally:
            self._running.pop(job_id, None)
            self._started.discard(job_id)
            self._wake.set()

    async def _record(
        self, entry: Entry, update: Queued | Started | Step | Finished | Failed
    ) -> bool:
        """Store and publish one update; True when it ends the job."""
        job_id = entry.job_id
        if isinstance(update, Started):
            self._started.add(job_id)
            if not await self._store.mark_running(job_id, update.worker):
                await self.backend.cancel(job_id)  # it ended meanwhile, e.g. cancelled
            self._publish_positions()
        elif isinstance(update, Finished):
            await self._finish(entry, update)
            return True
        elif isinstance(update, Failed):
            status = "cancelled" if update.cancelled else "failed"
            if await self._store.mark_ended(job_id, status, update.message):
                self._publish(Stopped(job_id, update.message, update.cancelled))
            else:
                await self._publish_as_stored(job_id)
            return True
        self._publish(update)
        return False

    async def _finish(self, entry: Entry, update: Finished) -> None:
        saved = await self._files.save(entry.job_id, [image.png for image in update.images])
        paths = [str(path) for path, _ in saved]
        digests = [digest for _, digest in saved]
        if not await self._store.mark_done(entry.job_id, update.worker, paths, digests):
            # Ended meanwhile (cancelled from another process): that ending stands.
            await self._files.delete(path for path, _ in saved)
            await self._publish_as_stored(entry.job_id)
            return
        seeds = tuple(image.seed for image in update.images)
        done = Completed(
            entry.job_id, tuple(path for path, _ in saved), seeds, update.worker, update.seconds
        )
        self._publish(done)

    async def _publish_as_stored(self, job_id: str) -> None:
        """Tell followers how storage says the job ended."""
        job = await self._store.get(job_id)
        cancelled = job is None or job.status == "cancelled"
        message = job.error if job is not None and job.error else "Cancelled."
        self._publish(Stopped(job_id, message, cancelled))

    async def _fail(self, job_id: str, message: str) -> None:
        try:
            await self._store.mark_ended(job_id, "failed", message)
        except Exception:
            log.exception("could not record the failure of image job %s", job_id)
        self._publish(Stopped(job_id, message))
