"""Image jobs in storage: the ``image_jobs`` table's repository (``JobStore``).

The ``imagine`` plugin records every generation job here: its parameters, who asked and
where, its status and timings, and the files it produced with their SHA-256 digests. It
is the source of truth for per-user pending limits, per-server daily quotas and recovery
after a crash (queued and running jobs are re-enqueued on start).

It shares ``Storage``'s engine and speaks surrogate keys and plain values; it never writes
files, never talks to an image back end and never knows about a platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, func, select, update

from storage.models import IMAGE_JOB_STATUSES, image_jobs, utcnow
from storage.repository import _translated, _utc

if TYPE_CHECKING:
    from storage.repository import Storage

PENDING = ("queued", "running")
"""Statuses of jobs that are not over yet."""

COUNTED = ("queued", "running", "done")
"""Statuses whose images count against a server's daily quota."""


@dataclass(frozen=True, slots=True)
class ImageJob:
    """One stored image job."""

    id: str
    status: str
    params: dict[str, Any]
    seed: int
    count: int
    server_pk: int
    user_pk: int
    channel_pk: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    results: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()
    error: str | None = None

    @property
    def pending(self) -> bool:
        """Queued or running: not over yet."""
        return self.status in PENDING


class JobStore:
    """Reads and writes ``image_jobs`` over the engine of an open ``Storage``."""

    def __init__(self, storage: Storage) -> None:
        """Use ``storage``'s engine (and thereby its database and connection pool)."""
        self._engine = storage.engine

    @_translated
    async def create(self, job: ImageJob) -> None:
        """Insert a new job (normally with status ``queued``)."""
        _check_status(job.status)
        row = {
            "id": job.id,
            "status": job.status,
            "server_id": job.server_pk,
            "user_id": job.user_pk,
            "channel_id": job.channel_pk,
            "params": dict(job.params),
            "seed": job.seed,
            "count": job.count,
            "results": [],
            "sha256": [],
            "created_at": job.created_at,
        }
        async with self._engine.begin() as conn:
            await conn.execute(image_jobs.insert().values(row))

    @_translated
    async def get(self, job_id: str) -> ImageJob | None:
        """The job with this id, or None."""
        stmt = select(image_jobs).where(image_jobs.c.id == job_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _job(row)

    @_translated
    async def unfinished(self) -> list[ImageJob]:
        """Queued and running jobs, oldest first (what a crash left behind)."""
        t = image_jobs
        stmt = select(t).where(t.c.status.in_(PENDING)).order_by(t.c.created_at, t.c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_job(row) for row in rows]

    @_translated
    async def pending_count(self, server_pk: int, user_pk: int) -> int:
        """How many of the user's jobs in the server are queued or running."""
        t = image_jobs
        stmt = select(func.count()).where(
            t.c.server_id == server_pk, t.c.user_id == user_pk, t.c.status.in_(PENDING)
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    @_translated
    async def images_since(self, server_pk: int, since: datetime) -> int:
        """Images of the server's jobs created since ``since`` that are done or pending."""
        t = image_jobs
        stmt = select(func.coalesce(func.sum(t.c.count), 0)).where(
            t.c.server_id == server_pk, t.c.created_at >= since, t.c.status.in_(COUNTED)
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def requeue(self, job_id: str) -> None:
        """Put a job interrupted by a crash back to ``queued``."""
        await self._set(job_id, status="queued", started_at=None, worker=None)

    async def mark_running(self, job_id: str, worker: str) -> None:
        """A worker took the job."""
        await self._set(job_id, status="running", worker=worker, started_at=utcnow())

    async def mark_done(
        self, job_id: str, worker: str, results: Sequence[str], sha256: Sequence[str]
    ) -> None:
        """The job finished; ``results`` are the PNG paths, ``sha256`` their digests."""
        await self._set(
            job_id,
            status="done",
            worker=worker,
            results=list(results),
            sha256=list(sha256),
            finished_at=utcnow(),
        )

    async def mark_ended(self, job_id: str, status: str, error: str) -> None:
        """The job failed or was cancelled; ``error`` says why (fit for users)."""
        _check_status(status)
        await self._set(job_id, status=status, error=error, finished_at=utcnow())

    @_translated
    async def delete(self, job_id: str) -> bool:
        """Forget a job (its files are the caller's business); False if it was unknown."""
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(image_jobs).where(image_jobs.c.id == job_id))
        return bool(result.rowcount)

    @_translated
    async def _set(self, job_id: str, **values: Any) -> None:
        if "status" in values:
            _check_status(values["status"])
        stmt = update(image_jobs).where(image_jobs.c.id == job_id).values(**values)
        async with self._engine.begin() as conn:
            await conn.execute(stmt)


def _check_status(status: str) -> None:
    if status not in IMAGE_JOB_STATUSES:
        raise ValueError(f"unknown job status {status!r}; expected one of {IMAGE_JOB_STATUSES}")


def _job(row: Row[Any]) -> ImageJob:
    return ImageJob(
        id=row.id,
        status=row.status,
        params=dict(row.params or {}),
        seed=int(row.seed),
        count=int(row._mapping["count"]),  # Row.count is tuple.count
        server_pk=row.server_id,
        user_pk=row.user_id,
        channel_pk=row.channel_id,
        created_at=_utc(row.created_at),
        started_at=_utc(row.started_at) if row.started_at else None,
        finished_at=_utc(row.finished_at) if row.finished_at else None,
        worker=row.worker,
        results=tuple(row.results or ()),
        sha256=tuple(row.sha256 or ()),
        error=row.error,
    )
