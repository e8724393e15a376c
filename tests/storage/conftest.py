"""Fixtures for the storage stories: every story runs on SQLite and on PostgreSQL.

PostgreSQL is the real server at 127.0.0.1:5432 (override the base URL with
``ATELIER_TEST_POSTGRES_URL``): one fresh, uniquely named database per test session,
emptied before each test and dropped at the end. Deselect it with ``-m "not postgres"``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from core.events import Origin
from storage import Storage

PG_BASE_URL = os.environ.get(
    "ATELIER_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"
)


def _asyncpg_dsn(database: str) -> str:
    return (
        make_url(PG_BASE_URL)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn("postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session; yields its name, drops it after."""
    name = f"atelier_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL not usable at {PG_BASE_URL} ({exc}); use -m 'not postgres'")
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty_pg_database(name: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(name))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite in a not-yet-existing folder, or this session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'atelier.db'}"
    # Asked for here, in a sync fixture, so only PostgreSQL stories create the database.
    name: str = request.getfixturevalue("pg_database")
    return f"{PG_BASE_URL}/{name}"


@pytest.fixture
async def database_url(backend_url: str) -> str:
    """The URL of an empty database on each backend in turn."""
    url = make_url(backend_url)
    if url.get_backend_name() == "postgresql" and url.database:
        await _empty_pg_database(url.database)
    return backend_url


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    """A migrated ``Storage`` on the empty database, closed after the test."""
    opened = await Storage.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


MakeOrigin = Callable[..., Origin]


@pytest.fixture
def make_origin() -> MakeOrigin:
    """Builds ``Origin``s with readable defaults: ``make_origin(user="bob")``."""

    def make(
        server: str = "guild-1",
        channel: str = "general",
        user: str = "ada",
        platform: str = "discord",
    ) -> Origin:
        return Origin(
            platform=platform,
            server_id=server,
            channel_id=channel,
            user_id=user,
            user_name=user.title(),
            server_name=f"{server} server",
            channel_name=f"#{channel}",
        )

    return make


async def run_on(url: str, work: Callable[[Connection], object]) -> object:
    """Run ``work`` on a connection of a fresh engine for ``url``, in one transaction."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()
