"""Stories of the ``image_jobs`` table on SQLite and PostgreSQL (migration 0002)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.events import Origin
from storage import Storage
from storage.jobs import ImageJob, JobStore
from storage.models import utcnow


async def _revision_and_columns(url: str) -> tuple[list[str], set[str]]:
    def look(conn: Connection) -> tuple[list[str], set[str]]:
        revisions = [
            row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))
        ]
        columns = {c["name"] for c in inspect(conn).get_columns("image_jobs")}
        return revisions, columns

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(look)
    finally:
        await engine.dispose()


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


async def test_migration_0002_creates_image_jobs(database_url: str) -> None:
    storage = await Storage.open(database_url)
    await storage.close()
    revisions, columns = await _revision_and_columns(database_url)
    assert revisions == ["0002"]
    assert {"id", "status", "params", "seed", "server_id", "user_id", "channel_id"} <= columns
    assert {"results", "sha256", "worker", "error", "started_at", "finished_at"} <= columns


async def test_a_job_row_goes_from_queued_to_done_and_counts_for_quotas(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await Storage.open(database_url)
    try:
        ids = await storage.identify(make_origin())
        store = JobStore(storage)
        where = (ids.server_pk, ids.user_pk, ids.channel_pk)
        await store.create(_job("a" * 32, *where))
        yesterday = datetime.now(UTC) - timedelta(days=1, hours=1)
        await store.create(_job("b" * 32, *where, status="done", created_at=yesterday))
        assert await store.pending_count(ids.server_pk, ids.user_pk) == 1
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert await store.images_since(ids.server_pk, today) == 2

        await store.mark_running("a" * 32, "gpu-0")
        await store.mark_done("a" * 32, "gpu-0", ["/x/a-0.png", "/x/a-1.png"], ["d0", "d1"])
        job = await store.get("a" * 32)
        assert job is not None and job.status == "done" and job.seed == 2**32 - 1
        assert job.results == ("/x/a-0.png", "/x/a-1.png") and job.sha256 == ("d0", "d1")
        assert job.started_at is not None and job.finished_at is not None
        assert job.created_at.tzinfo is not None
        assert await store.pending_count(ids.server_pk, ids.user_pk) == 0
        assert [j.id for j in await store.unfinished()] == []
        assert await store.images_since(ids.server_pk, today) == 2

        await store.mark_ended("a" * 32, "failed", "boom")
        assert await store.images_since(ids.server_pk, today) == 0  # failed images are free
    finally:
        await storage.close()
