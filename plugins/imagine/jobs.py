"""Image jobs in storage: the repository (``JobStore``) of the plugin's ``image_jobs`` table.

The ``imagine`` plugin records every generation job here: its parameters, who asked and
where, its status and timings, and the files it produced with their SHA-256 digests. It
is the source of truth for pending limits, daily quotas (per user, per server, for the
whole bot) and recovery after a crash (queued and running jobs are re-enqueued on start).

Two rules hold whatever the interleaving of bot processes:

* ``admit`` counts and inserts in one transaction that competing admissions wait for
  (SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before counting;
  PostgreSQL: transaction-scoped advisory locks per user, per server, or one global lock
  when there is a global quota), so concurrent requests never overshoot a limit.
* A status only moves forward: queued → running → done | failed | cancelled. Every update
  is conditional on the current status, so a late "done" never overwrites "cancelled".

It uses the engine the app injects (the ``database`` back end) and speaks surrogate keys
and plain values; it never writes files, never talks to an image back end and never
knows about a platform.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from plugins.imagine.tables import IMAGE_JOB_STATUSES, image_jobs
from storage.base import as_utc, translated
from storage.models import utcnow

PENDING = ("queued", "running")
"""Statuses of jobs that are not over yet."""

COUNTED = ("queued", "running", "done")
"""Statuses whose images count against the daily quotas."""

ENDED = ("done", "failed", "cancelled")
"""Final statuses: nothing moves a job out of them."""

# PostgreSQL advisory lock spaces (two-int4 keys; they never meet the migration lock's
# one-bigint key). Any constants work if every process uses the same ones.
_LOCK_GLOBAL = 0x696D6700
_LOCK_SERVER = 0x696D6701
_LOCK_USER = 0x696D6702
_INT4 = 2**31
_CHUNK = 500  # ids per IN (...) list

LimitName = Literal["pending", "user", "server", "global"]


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


@dataclass(frozen=True, slots=True)
class Limits:
    """What a new job must fit in (0: no such limit); daily quotas count from ``since``."""

    since: datetime
    max_pending: int = 0  # the user's queued and running jobs in the job's server
    user_per_day: int = 0  # images of the user's jobs in every server (and DM)
    server_per_day: int = 0  # images of the server's jobs
    global_per_day: int = 0  # images of everybody's jobs


@dataclass(frozen=True, slots=True)
class Refusal:
    """The limit a job would break: its name, its size and how much of it is used."""

    limit: LimitName
    allowed: int
    used: int


class JobStore:
    """Reads and writes ``image_jobs`` over the engine of an open ``Storage``."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use ``engine`` (the ``database`` back end a plugin is given: ``Storage.engine``)."""
        self._engine = engine

    @translated
    async def create(self, job: ImageJob) -> None:
        """Insert a job without checking any limit (``admit`` checks them)."""
        async with self._engine.begin() as conn:
            await conn.execute(image_jobs.insert().values(_row(job)))

    @translated
    async def admit(self, job: ImageJob, limits: Limits) -> Refusal | None:
        """Insert ``job`` unless it would break one of ``limits``; then say which one.

        Counting and inserting are one transaction that concurrent admissions wait for,
        so five simultaneous requests against a limit of three admit exactly three.
        """
        async with self._engine.begin() as conn:
            await self._serialise(conn, job, limits)
            refusal = await _over(conn, job, limits)
            if refusal is None:
                await conn.execute(image_jobs.insert().values(_row(job)))
        return refusal

    async def _serialise(self, conn: AsyncConnection, job: ImageJob, limits: Limits) -> None:
        """Make competing admissions wait until this transaction ends."""
        if conn.dialect.name != "postgresql":
            # The first statement: the write lock is taken before anything is read, so no
            # other writer can insert between the counts and the insert (and WAL readers
            # never hold a stale snapshot that would make the upgrade fail).
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        keys = [(_LOCK_GLOBAL, 0)] if limits.global_per_day > 0 else []
        if not keys:  # the global lock covers the rest; else always server, then user
            if limits.server_per_day > 0:
                keys.append((_LOCK_SERVER, job.server_pk % _INT4))
            keys.append((_LOCK_USER, job.user_pk % _INT4))
        for space, key in keys:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": space, "key": key}
            )

    @translated
    async def get(self, job_id: str) -> ImageJob | None:
        """The job with this id, or None."""
        stmt = select(image_jobs).where(image_jobs.c.id == job_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _job(row)

    @translated
    async def unfinished(self) -> list[ImageJob]:
        """Queued and running jobs, oldest first (what a crash left behind)."""
        t = image_jobs
        stmt = select(t).where(t.c.status.in_(PENDING)).order_by(t.c.created_at, t.c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_job(row) for row in rows]

    @translated
    async def pending_count(self, server_pk: int, user_pk: int) -> int:
        """How many of the user's jobs in the server are queued or running."""
        async with self._engine.connect() as conn:
            return await _pending(conn, server_pk, user_pk)

    @translated
    async def images_since(
        self, since: datetime, *, server_pk: int | None = None, user_pk: int | None = None
    ) -> int:
        """Images of jobs created since ``since`` that are done or pending (of one server
        or one user if given; of everybody otherwise)."""
        async with self._engine.connect() as conn:
            return await _images(conn, since, server_pk=server_pk, user_pk=user_pk)

    # ---- status: forward only ----------------------------------------------------

    async def requeue(self, job_id: str) -> bool:
        """Put a job a crash interrupted while running back to ``queued``."""
        return await self._move(job_id, ("running",), status="queued", started_at=None, worker=None)

    async def mark_running(self, job_id: str, worker: str) -> bool:
        """A worker took the job; False if the job is already over (e.g. cancelled)."""
        return await self._move(
            job_id, PENDING, status="running", worker=worker, started_at=utcnow()
        )

    async def mark_done(
        self, job_id: str, worker: str, results: Sequence[str], sha256: Sequence[str]
    ) -> bool:
        """The job finished; ``results`` are the PNG paths, ``sha256`` their digests.

        False (and nothing stored) if the job was over already, e.g. cancelled meanwhile.
        """
        return await self._move(
            job_id,
            PENDING,
            status="done",
            worker=worker,
            results=list(results),
            sha256=list(sha256),
            finished_at=utcnow(),
        )

    async def mark_ended(self, job_id: str, status: str, error: str) -> bool:
        """The job failed or was cancelled; ``error`` says why (fit for users).

        False if the job was over already: the first ending wins.
        """
        return await self._move(job_id, PENDING, status=status, error=error, finished_at=utcnow())

    @translated
    async def _move(self, job_id: str, allowed_from: Sequence[str], **values: Any) -> bool:
        _check_status(values["status"])
        t = image_jobs
        stmt = update(t).where(t.c.id == job_id, t.c.status.in_(allowed_from)).values(**values)
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    # ---- retention -----------------------------------------------------------------

    @translated
    async def forget_results(self, job_ids: Collection[str]) -> None:
        """Clear the file paths (and digests) of these jobs: their files are going away."""
        t = image_jobs
        async with self._engine.begin() as conn:
            for chunk in _chunks(job_ids):
                stmt = update(t).where(t.c.id.in_(chunk)).values(results=[], sha256=[])
                await conn.execute(stmt)

    @translated
    async def delete_ended_before(self, cutoff: datetime) -> int:
        """Delete jobs that are over and were created before ``cutoff``; how many."""
        t = image_jobs
        stmt = delete(t).where(t.c.created_at < cutoff, t.c.status.in_(ENDED))
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount)

    @translated
    async def delete(self, job_id: str) -> bool:
        """Forget a job (its files are the caller's business); False if it was unknown."""
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(image_jobs).where(image_jobs.c.id == job_id))
        return bool(result.rowcount)


async def _over(conn: AsyncConnection, job: ImageJob, limits: Limits) -> Refusal | None:
    """The first limit ``job`` would break, counted on ``conn``; None if it fits."""
    if limits.max_pending > 0:
        pending = await _pending(conn, job.server_pk, job.user_pk)
        if pending >= limits.max_pending:
            return Refusal("pending", limits.max_pending, pending)
    quotas: list[tuple[LimitName, int, dict[str, int]]] = [
        ("user", limits.user_per_day, {"user_pk": job.user_pk}),
        ("server", limits.server_per_day, {"server_pk": job.server_pk}),
        ("global", limits.global_per_day, {}),
    ]
    for name, quota, scope in quotas:
        if quota > 0:
            used = await _images(conn, limits.since, **scope)
            if used + job.count > quota:
                return Refusal(name, quota, used)
    return None


async def _pending(conn: AsyncConnection, server_pk: int, user_pk: int) -> int:
    t = image_jobs
    stmt = select(func.count()).where(
        t.c.server_id == server_pk, t.c.user_id == user_pk, t.c.status.in_(PENDING)
    )
    return int((await conn.execute(stmt)).scalar_one())


async def _images(
    conn: AsyncConnection,
    since: datetime,
    *,
    server_pk: int | None = None,
    user_pk: int | None = None,
) -> int:
    t = image_jobs
    stmt = select(func.coalesce(func.sum(t.c.count), 0)).where(
        t.c.created_at >= since, t.c.status.in_(COUNTED)
    )
    if server_pk is not None:
        stmt = stmt.where(t.c.server_id == server_pk)
    if user_pk is not None:
        stmt = stmt.where(t.c.user_id == user_pk)
    return int((await conn.execute(stmt)).scalar_one())


def _row(job: ImageJob) -> dict[str, Any]:
    _check_status(job.status)
    return {
        "id": job.id,
        "status": job.status,
        "server_id": job.server_pk,
        "user_id": job.user_pk,
        "channel_id": job.channel_pk,
        "params": dict(job.params),
        "seed": job.seed,
        "count": job.count,
        "results": list(job.results),
        "sha256": list(job.sha256),
        "created_at": job.created_at,
    }


def _chunks(ids: Collection[str]) -> list[list[str]]:
    items = sorted(ids)
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


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
        created_at=as_utc(row.created_at),
        started_at=as_utc(row.started_at) if row.started_at else None,
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
        worker=row.worker,
        results=tuple(row.results or ()),
        sha256=tuple(row.sha256 or ()),
        error=row.error,
    )
