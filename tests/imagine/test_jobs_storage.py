"""Stories of the imagine plugin's ``image_jobs`` table on SQLite and PostgreSQL.

Admission counts and inserts atomically (concurrent requests never overshoot a limit) and
a job's status only moves forward.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.events import Origin
from plugins.imagine import tables
from plugins.imagine.jobs import ImageJob, JobStore, LimitName, Limits, Refusal
from storage import Storage
from storage.models import utcnow

MIGRATIONS = Path(tables.__file__).parent / "migrations"


async def open_storage(url: str) -> Storage:
    """Storage with the core's and the imagine plugin's migrations applied."""
    storage = await Storage.open(url)
    await storage.upgrade_plugin("imagine", MIGRATIONS, tables.metadata)
    return storage


_MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _job(job_id: str, server_pk: int, user_pk: int, channel_pk: int, **kw: object) -> ImageJob:
    values: dict[str, object] = {
        "id": job_id,
        "status": "queued",
        "params": {"prompt": "a cat", "width": 64},
        "seed": 2**32 - 1,  # the largest seed fits (BIGINT on PostgreSQL)
        "count": 2,
        "server_pk": server_pk,
        "user_pk": user_pk,
        "channel_pk": channel_pk,
        "created_at": utcnow(),
        **kw,
    }
    return ImageJob(**values)  # type: ignore[arg-type]


async def test_a_job_row_goes_from_queued_to_done_and_counts_for_quotas(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await open_storage(database_url)
    try:
        ids = await storage.identify(make_origin())
        store = JobStore(storage.engine)
        where = (ids.server_pk, ids.user_pk, ids.channel_pk)
        await store.create(_job("a" * 32, *where))
        yesterday = datetime.now(UTC) - timedelta(days=1, hours=1)
        await store.create(_job("b" * 32, *where, status="done", created_at=yesterday))
        assert await store.pending_count(ids.server_pk, ids.user_pk) == 1
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert await store.images_since(today, server_pk=ids.server_pk) == 2
        assert await store.images_since(today, user_pk=ids.user_pk) == 2
        assert await store.images_since(today) == 2

        await store.mark_running("a" * 32, "gpu-0")
        await store.mark_done("a" * 32, "gpu-0", ["/x/a-0.png", "/x/a-1.png"], ["d0", "d1"])
        job = await store.get("a" * 32)
        assert job is not None and job.status == "done" and job.seed == 2**32 - 1
        assert job.results == ("/x/a-0.png", "/x/a-1.png") and job.sha256 == ("d0", "d1")
        assert job.started_at is not None and job.finished_at is not None
        assert job.created_at.tzinfo is not None
        assert await store.pending_count(ids.server_pk, ids.user_pk) == 0
        assert [j.id for j in await store.unfinished()] == []
        assert await store.images_since(today, server_pk=ids.server_pk) == 2

        await store.create(_job("c" * 32, *where))
        assert await store.images_since(today, user_pk=ids.user_pk) == 4
        assert await store.mark_ended("c" * 32, "failed", "boom")
        assert await store.images_since(today, user_pk=ids.user_pk) == 2  # failed: free
    finally:
        await storage.close()


async def test_a_status_only_moves_forward(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await open_storage(database_url)
    try:
        ids = await storage.identify(make_origin())
        store = JobStore(storage.engine)
        where = (ids.server_pk, ids.user_pk, ids.channel_pk)
        await store.create(_job("a" * 32, *where))
        assert await store.mark_running("a" * 32, "gpu-0")
        assert await store.mark_ended("a" * 32, "cancelled", "Cancelled.")
        # the worker's late answers change nothing: cancelled stays cancelled
        assert not await store.mark_done("a" * 32, "gpu-0", ["/x/a-0.png"], ["d0"])
        assert not await store.mark_ended("a" * 32, "failed", "boom")
        assert not await store.mark_running("a" * 32, "gpu-1")
        assert not await store.requeue("a" * 32)
        job = await store.get("a" * 32)
        assert job is not None and (job.status, job.error, job.results) == (
            "cancelled",
            "Cancelled.",
            (),
        )
        assert job.worker == "gpu-0"

        await store.create(_job("b" * 32, *where))
        assert not await store.requeue("b" * 32)  # only a running job goes back to queued
        assert await store.mark_done("b" * 32, "gpu-0", ["/x/b-0.png"], ["d0"])
        assert not await store.mark_ended("b" * 32, "cancelled", "Cancelled.")
        done = await store.get("b" * 32)
        assert done is not None and (done.status, done.results) == ("done", ("/x/b-0.png",))
    finally:
        await storage.close()


# Five requests at once, each for one image, against a limit of three (the others 0: off).
# Who asks: one user in one server, one user in five servers (a DM is a server of its
# own), five users in one server, five users in five servers.
CONCURRENT = [
    pytest.param("pending", Limits(_MIDNIGHT, max_pending=3), "same", "same", id="pending"),
    pytest.param("user", Limits(_MIDNIGHT, user_per_day=3), "same", "each", id="user"),
    pytest.param("server", Limits(_MIDNIGHT, server_per_day=3), "each", "same", id="server"),
    pytest.param("global", Limits(_MIDNIGHT, global_per_day=3), "each", "each", id="global"),
]


@pytest.mark.parametrize(("limit", "limits", "users", "servers"), CONCURRENT)
async def test_five_concurrent_requests_against_a_limit_of_three_admit_exactly_three(
    database_url: str,
    make_origin: Callable[..., Origin],
    limit: LimitName,
    limits: Limits,
    users: str,
    servers: str,
) -> None:
    storage = await open_storage(database_url)
    try:
        store = JobStore(storage.engine)
        jobs = []
        for n in range(5):
            ids = await storage.identify(
                make_origin(
                    user="ada" if users == "same" else f"user{n}",
                    server="guild-1" if servers == "same" else f"dm:{n}",
                )
            )
            jobs.append(_job(f"{n:032x}", ids.server_pk, ids.user_pk, ids.channel_pk, count=1))
        answers = await asyncio.gather(*(store.admit(job, limits) for job in jobs))
        refused = [answer for answer in answers if answer is not None]
        assert answers.count(None) == 3 and refused == [Refusal(limit, 3, 3)] * 2
        admitted = [job.id for job, answer in zip(jobs, answers, strict=True) if answer is None]
        assert sorted(j.id for j in await store.unfinished()) == sorted(admitted)
    finally:
        await storage.close()
