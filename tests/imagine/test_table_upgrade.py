"""The imagine plugin owns ``image_jobs``: fresh databases get it from the plugin's own
migrations, and databases made before (when the core's 0002/0003 created the table) keep
their jobs and gain only what they lack. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Connection, inspect, text
from sqlalchemy.dialects import postgresql

from bot.app import App
from bot.config import Settings
from core.events import Origin
from plugins.imagine import tables
from plugins.imagine.jobs import JobStore
from storage import Storage
from tests.fakes import ScriptedChatModel, script
from tests.imagine.fake_backend import FakeImageBackend
from tests.storage.conftest import run_on

MIGRATIONS = Path(tables.__file__).parent / "migrations"
ALL_INDEXES = {
    "ix_image_jobs_server_id_created_at",
    "ix_image_jobs_user_id_created_at",
    "ix_image_jobs_created_at",
    "ix_image_jobs_status",
}


def _legacy_image_jobs(conn: Connection, *, with_0003: bool) -> None:
    """``image_jobs`` exactly as the core's revisions 0002 (and 0003) made it, frozen here."""
    op = Operations(MigrationContext.configure(conn))
    pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    ts = sa.DateTime(timezone=True)

    def fk(name: str, target: str) -> sa.ForeignKeyConstraint:
        return sa.ForeignKeyConstraint(
            [name], [f"{target}.id"], name=f"fk_image_jobs_{name}_{target}", ondelete="CASCADE"
        )

    op.create_table(
        "image_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *(sa.Column(name, pk, nullable=False) for name in ("server_id", "user_id", "channel_id")),
        sa.Column("params", json, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("results", json, nullable=False),
        sa.Column("sha256", json, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("started_at", ts, nullable=True),
        sa.Column("finished_at", ts, nullable=True),
        fk("server_id", "servers"),
        fk("user_id", "users"),
        fk("channel_id", "channels"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="ck_image_jobs_status",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_image_jobs"),
    )
    op.create_index("ix_image_jobs_server_id_created_at", "image_jobs", ["server_id", "created_at"])
    op.create_index("ix_image_jobs_status", "image_jobs", ["status"])
    if with_0003:
        op.create_index("ix_image_jobs_user_id_created_at", "image_jobs", ["user_id", "created_at"])
        op.create_index("ix_image_jobs_created_at", "image_jobs", ["created_at"])


def _state(conn: Connection) -> dict[str, object]:
    """The plugin's revision, the table's indexes, and model-vs-database differences."""
    found = inspect(conn)
    revision = None
    if found.has_table("alembic_version_imagine"):
        revision = conn.execute(text("SELECT version_num FROM alembic_version_imagine")).scalar()
    diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    return {
        "revision": revision,
        "indexes": {str(index["name"]) for index in found.get_indexes("image_jobs")},
        "diff": [d for d in diff if _about_image_jobs(d)],
        "rows": conn.execute(text("SELECT id, status FROM image_jobs ORDER BY id")).all(),
    }


def _about_image_jobs(difference: object) -> bool:
    # compare_metadata also lists the core's tables as "extra": only image_jobs matters here.
    return "image_jobs" in repr(difference)


async def test_a_fresh_database_gets_the_table_from_the_plugins_own_migrations(
    database_url: str,
) -> None:
    storage = await Storage.open(database_url)
    try:
        assert not await run_on(database_url, lambda c: inspect(c).has_table("image_jobs"))
        await storage.upgrade_plugin("imagine", MIGRATIONS, tables.metadata)
        await storage.upgrade_plugin("imagine", MIGRATIONS, tables.metadata)  # idempotent
    finally:
        await storage.close()

    state = await run_on(database_url, _state)
    assert state == {"revision": "imagine_0001", "indexes": ALL_INDEXES, "diff": [], "rows": []}


async def test_a_database_from_before_keeps_its_jobs_and_gains_what_it_lacks(
    database_url: str, make_origin: Callable[..., Origin], tmp_path: Path
) -> None:
    storage = await Storage.open(database_url)  # the core at 0003: no image_jobs any more
    ids = await storage.identify(make_origin())
    await storage.close()
    await run_on(database_url, lambda c: _legacy_image_jobs(c, with_0003=False))  # as at 0002
    old_job = {
        "id": "a" + "0" * 31,
        "status": "queued",
        "server_id": ids.server_pk,
        "user_id": ids.user_pk,
        "channel_id": ids.channel_pk,
        "params": {"prompt": "an old fox"},
        "seed": 7,
        "count": 1,
        "results": [],
        "sha256": [],
        "created_at": datetime(2026, 12, 1, 10, tzinfo=UTC),
    }
    await run_on(database_url, lambda c: c.execute(tables.image_jobs.insert().values(old_job)))

    fake = FakeImageBackend()
    settings = Settings(
        data_dir=tmp_path / "data",
        storage={"url": database_url},
        plugins={"disable_entry_points": True},
    )
    model = ScriptedChatModel(messages=script("ok", repeat=True))
    async with await App.start(settings, chat_model=model, image_backend=fake) as app:
        store = JobStore(app.services.storage.engine)
        job = await store.get("a" + "0" * 31)
        assert job is not None and job.params["prompt"] == "an old fox"
        assert [request.prompt for request in fake.submitted] == ["an old fox"]  # recovered

    state = await run_on(database_url, _state)
    assert state["revision"] == "imagine_0001"
    assert state["indexes"] == ALL_INDEXES  # 0003's two indexes added, nothing doubled
    assert state["diff"] == []
