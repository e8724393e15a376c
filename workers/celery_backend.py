"""The bot's side of the Celery pool: an ``ImageBackend`` that sends batches to GPU workers.

``submit`` gathers requests with equal ``batch_key`` that arrive within
``batch_window_ms`` (at most ``max_batch``) and sends them as ONE ``atelier.generate``
task, so a worker runs them as one pipeline call. Progress comes back over Redis pub/sub,
images from a Redis hash (see ``workers.celery_app`` for the wire format). ``cancel`` sets
the job's cancel flag, which the worker checks between steps, and revokes a task that has
not started once none of its jobs is wanted.

Never blocks the event loop: Celery client calls run in ``asyncio.to_thread``, Redis goes
through ``redis.asyncio``. Never imports torch or diffusers. A dead broker or Redis ends
a job with ``Failed`` and a clear message, never an exception out of ``submit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub

from workers.api import (
    Failed,
    Finished,
    ImageRequest,
    JobUpdate,
    Queued,
    Started,
    Step,
)
from workers.celery_app import TASK_NAME, make_celery, state_url
from workers.config import ImagineSettings
from workers.validate import ResultRejected, check_images
from workers.wire import (
    DEFAULT_NAMESPACE,
    Keys,
    ResultReady,
    decode_result,
    parse_event,
    request_to_dict,
)

log = logging.getLogger(__name__)

_RESULT_POLL_S = 2.0
"""Idle interval after which a job looks for its result itself (a missed ``done``)."""

_Item = JobUpdate | ResultReady | None


@dataclass(eq=False)
class _Batch:
    """Jobs that travel as one task."""

    key: tuple[Any, ...]
    jobs: list[_Job] = field(default_factory=list)
    task_id: str = ""
    closed: bool = False  # no more joiners; being sent or sent
    sent: bool = False
    started: bool = False


@dataclass(eq=False)
class _Job:
    """One submitted request and the mailbox its ``submit`` generator reads."""

    request: ImageRequest
    inbox: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    batch: _Batch | None = None
    final: Failed | None = None  # set by cancel/close: yielded before anything else
    over: bool = False

    @property
    def job_id(self) -> str:
        return self.request.job_id


class CeleryImageBackend:
    """``ImageBackend`` over a Celery pool with a Redis broker (see module docstring)."""

    def __init__(
        self,
        settings: ImagineSettings,
        *,
        description: str = "Stable Diffusion on the GPU worker pool",
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self.description = description
        self._settings = settings
        self._keys = Keys(namespace)
        self._namespace = namespace
        self._app = make_celery(settings, namespace=namespace)  # connects lazily
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._jobs: dict[str, _Job] = {}
        self._open: dict[tuple[Any, ...], _Batch] = {}
        self._waiting: list[_Batch] = []  # sent, not started yet, in send order
        self._tasks: set[asyncio.Task[None]] = set()
        self._flag_ttl = int(settings.visibility_timeout_s + settings.job_timeout_s + 60)

    async def start(self) -> None:
        """Nothing to do up front: Redis and the broker are reached on first use."""

    async def close(self) -> None:
        """Fail every job in flight, tell the workers, and drop the connections."""
        for job in list(self._jobs.values()):
            self._finish(job, Failed(job.job_id, "the image service is shutting down"))
        with contextlib.suppress(Exception):
            await self._set_flags([j.job_id for j in self._jobs.values()])
        for task in [*self._tasks, *([self._reader] if self._reader else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()
        self._reader = self._pubsub = self._redis = None
        await asyncio.to_thread(self._app.close)

    async def submit(self, request: ImageRequest) -> AsyncIterator[JobUpdate]:
        """Queue ``request`` (batched with compatible ones); stream its updates."""
        if request.job_id in self._jobs:
            yield Failed(request.job_id, "a job with this id is already running")
            return
        job = _Job(request)
        self._jobs[job.job_id] = job
        try:
            try:
                pubsub = await self._connect()
                await pubsub.subscribe(self._keys.channel(job.job_id))
            except Exception as exc:
                job.over = True
                message = _unreachable("the image queue (Redis) is unreachable: {}", exc)
                yield Failed(job.job_id, message)
                return
            self._enqueue(job)
            async for update in self._follow(job):
                yield update
        finally:
            await self._forget(job)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False if it is unknown or already over."""
        job = self._jobs.get(job_id)
        if job is None or job.over or job.final is not None:
            return False
        self._finish(job, Failed(job_id, "cancelled", cancelled=True))
        await self._abandon(job)
        return True

    async def health(self) -> dict[str, Any]:
        """Workers answering ping, broker reachability, queue length, jobs in flight."""
        facts: dict[str, Any] = {
            "backend": "celery",
            "queue": self._namespace,
            "jobs_in_flight": len(self._jobs),
            "batches_waiting": len(self._waiting),
        }
        try:
            workers, queued = await asyncio.to_thread(self._ping_and_count)
        except Exception as exc:
            broker = f"unreachable: {_unreachable('{}', exc)}"
            return {**facts, "workers": [], "broker": broker}
        return {**facts, "workers": workers, "broker": "ok", "queue_length": queued}

    def _ping_and_count(self) -> tuple[list[str], int]:
        replies = self._app.control.ping(timeout=1.0) or []
        workers = sorted(name for reply in replies for name in reply)
        with self._app.connection_for_write() as conn:
            try:
                declared = conn.default_channel.queue_declare(self._namespace, passive=True)
            except conn.channel_errors:  # no worker declared the queue yet
                return workers, 0
        return workers, int(declared.message_count)

    # -- connection and pub/sub ---------------------------------------------------------

    async def _connect(self) -> PubSub:
        async with self._connect_lock:
            if self._pubsub is not None:
                return self._pubsub
            client = aioredis.Redis.from_url(state_url(self._settings), socket_connect_timeout=5)
            pubsub = client.pubsub()
            try:
                # A channel of our own keeps the connection subscribed between jobs.
                await pubsub.subscribe(f"{self._namespace}:bot:{uuid.uuid4().hex}")
            except BaseException:
                await pubsub.aclose()
                await client.aclose()
                raise
            self._redis, self._pubsub = client, pubsub
            self._reader = asyncio.create_task(self._read(pubsub), name="celery-backend-pubsub")
            return pubsub

    async def _read(self, pubsub: PubSub) -> None:
        """Route every pub/sub event to its job's inbox (one reader for all jobs).

        Anyone who reaches Redis can publish on a job's channel, so a message that is
        not one of ours is logged and skipped: this loop must outlive any payload.
        """
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except Exception:
                log.warning("pub/sub read failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if message is not None and message.get("type") == "message":
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        prefix = self._keys.channel("").encode()
        channel = message.get("channel")
        if not isinstance(channel, bytes) or not channel.startswith(prefix):
            return
        job = self._jobs.get(channel[len(prefix) :].decode(errors="replace"))
        if job is None:
            return
        try:
            event = parse_event(job.job_id, message.get("data"))
        except ValueError as exc:
            log.warning("skipped a malformed message on %s: %s", channel[:200], exc)
            return
        self._route(job, event)

    def _route(self, job: _Job, event: Started | Step | ResultReady) -> None:
        batch = job.batch
        if isinstance(event, Started) and batch is not None and not batch.started:
            batch.started = True
            if batch in self._waiting:
                self._waiting.remove(batch)
        job.inbox.put_nowait(event)

    # -- batching and sending -----------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        key = job.request.batch_key
        batch = self._open.get(key)
        if batch is None:
            # The namespace in the task id tells operators (and tests) whose task it is.
            batch = self._open[key] = _Batch(key, task_id=f"{self._namespace}-{uuid.uuid4().hex}")
            self._spawn(self._send_after(batch, self._settings.batch_window_ms / 1000))
        batch.jobs.append(job)
        job.batch = batch
        if len(batch.jobs) >= self._settings.max_batch:
            self._close_batch(batch)
            self._spawn(self._send(batch))

    def _close_batch(self, batch: _Batch) -> None:
        batch.closed = True
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]

    async def _send_after(self, batch: _Batch, delay: float) -> None:
        await asyncio.sleep(delay)
        if not batch.closed:
            self._close_batch(batch)
            await self._send(batch)

    async def _send(self, batch: _Batch) -> None:
        if not batch.jobs:
            return
        position = len(self._waiting)
        self._waiting.append(batch)
        payload = [request_to_dict(job.request) for job in batch.jobs]
        try:
            await asyncio.to_thread(
                self._app.send_task,
                TASK_NAME,
                args=[payload],
                task_id=batch.task_id,
                queue=self._namespace,
                expires=self._settings.job_timeout_s,
            )
        except Exception as exc:
            self._waiting.remove(batch)
            for job in batch.jobs:
                message = _unreachable("the image workers are unreachable (broker: {})", exc)
                self._finish(job, Failed(job.job_id, message))
            return
        batch.sent = True
        for job in batch.jobs:
            if not batch.started:
                job.inbox.put_nowait(Queued(job.job_id, position))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- following one job --------------------------------------------------------------

    async def _follow(self, job: _Job) -> AsyncIterator[JobUpdate]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.job_timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self._abandon(job)
                job.over = True
                timeout = self._settings.job_timeout_s
                yield Failed(job.job_id, f"the image took too long (over {timeout:g} s)")
                return
            update = await self._next_update(job, min(remaining, _RESULT_POLL_S))
            if update is None:
                continue
            final = isinstance(update, Finished | Failed)
            job.over = job.over or final
            yield update
            if final:
                return

    async def _next_update(self, job: _Job, wait: float) -> JobUpdate | None:
        try:
            item = await asyncio.wait_for(job.inbox.get(), timeout=wait)
        except TimeoutError:
            item = ResultReady() if job.batch is not None and job.batch.sent else None
        if job.final is not None:
            return job.final
        if not isinstance(item, ResultReady):
            return item
        try:
            return await self._claim(job)
        except Exception as exc:
            log.warning("job %s: reading its result from Redis failed: %s", job.job_id, exc)
            return Failed(job.job_id, "lost contact with the image queue (Redis)")

    async def _claim(self, job: _Job) -> Finished | Failed | None:
        """Take the job's stored result, if there is one yet, and mark the job delivered.

        The result is checked before it is handed on: only real PNGs of the requested
        size and count leave this back end.
        """
        client = self._redis
        if client is None:
            return Failed(job.job_id, "the image queue connection is closed")
        stored: dict[Any, Any] = await client.hgetall(self._keys.result(job.job_id))
        if b"meta" not in stored:
            return None
        pipe = client.pipeline(transaction=False)
        pipe.delete(self._keys.result(job.job_id))
        pipe.set(self._keys.cancel(job.job_id), b"delivered", ex=self._flag_ttl)
        await pipe.execute()
        try:
            result = decode_result(job.job_id, stored)
            if isinstance(result, Finished):
                await asyncio.to_thread(check_images, job.request, result.images)
        except ResultRejected as exc:
            log.error("rejected the result of job %s: %s", job.job_id, exc)
            return Failed(job.job_id, f"the image worker sent back an unusable result: {exc}")
        return result

    # -- ending a job -------------------------------------------------------------------

    def _finish(self, job: _Job, failed: Failed) -> None:
        """End ``job`` from outside its generator (cancel, close, send error)."""
        job.final = failed
        job.inbox.put_nowait(None)  # wake the generator

    async def _abandon(self, job: _Job) -> None:
        """Nobody waits for ``job``: tell its worker, and revoke a task nobody wants."""
        batch = job.batch
        if batch is not None and not batch.closed:
            batch.jobs.remove(job)  # still gathering: it never leaves this process
            job.batch = None
            return
        try:
            await self._set_flags([job.job_id])
        except Exception:
            log.warning("could not set the cancel flag of %s", job.job_id, exc_info=True)
        if batch is not None and not batch.started and not self._wanted(batch, but=job):
            with contextlib.suppress(ValueError):
                self._waiting.remove(batch)
            try:
                await asyncio.to_thread(self._app.control.revoke, batch.task_id)
            except Exception:
                log.warning("could not revoke task %s", batch.task_id, exc_info=True)

    def _wanted(self, batch: _Batch, *, but: _Job) -> bool:
        """Whether another job of ``batch`` still waits for its result."""
        return any(j is not but and not j.over and j.final is None for j in batch.jobs)

    async def _set_flags(self, job_ids: list[str]) -> None:
        if self._redis is None or not job_ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.set(self._keys.cancel(job_id), b"cancelled", ex=self._flag_ttl)
        await pipe.execute()

    async def _forget(self, job: _Job) -> None:
        """The generator ended (normally, by error, or closed early by its consumer)."""
        if not job.over and job.final is None:
            await self._abandon(job)  # the consumer walked away: same as a cancel
        job.over = True
        self._jobs.pop(job.job_id, None)
        batch = job.batch
        if batch is not None and batch in self._waiting and not self._wanted(batch, but=job):
            self._waiting.remove(batch)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(self._keys.channel(job.job_id))


_AUTH_FAILED = (
    "the image queue (Redis) refused the password: check the URLs in "
    "ATELIER_IMAGINE__BROKER_URL and ATELIER_IMAGINE__RESULT_BACKEND"
)
_AUTH_MARKERS = ("NOAUTH", "WRONGPASS", "invalid username-password", "Authentication required")


def _unreachable(template: str, exc: BaseException) -> str:
    """What to tell users about a failed connection: a refused password is named as one
    (Celery and kombu wrap redis' AuthenticationError, so the chain is searched)."""
    seen: BaseException | None = exc
    for _ in range(16):  # a bounded walk: a chain may loop
        if seen is None:
            break
        if isinstance(seen, redis.exceptions.AuthenticationError) or any(
            marker in str(seen) for marker in _AUTH_MARKERS
        ):
            return _AUTH_FAILED
        seen = seen.__cause__ or seen.__context__
    return template.format(exc)
