"""Fixtures for imagine stories: a real App on SQLite with the fake image back end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.config import Settings
from core.events import Buttons, CommandEvent, Event, ReplyPart, Text
from plugins.imagine.jobs import ImageJob, JobStore
from tests.core.conftest import collect, origin
from tests.fakes import ScriptedChatModel, script
from tests.imagine.fake_backend import FakeImageBackend
from tests.storage.conftest import (  # noqa: F401  (the storage stories' two-backend fixtures)
    backend_url,
    database_url,
    make_origin,
    pg_database,
)
from workers.config import ImagineSettings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Small images by default, two jobs in flight, generous chat rate limits."""
    return Settings(
        data_dir=tmp_path / "data",
        limits={"user_burst": 1000, "server_burst": 1000},
        plugins={
            "disable_entry_points": True,
            "config": {
                "imagine": {
                    "default_width": 64,
                    "default_height": 64,
                    "default_steps": 4,
                    "max_width": 512,
                    "max_height": 512,
                    "max_pixels": 256 * 256,
                    "max_batch": 1,
                }
            },
        },
    )


def imagine_config(app: App) -> ImagineSettings:
    """The running imagine plugin's config (what an operator's config.toml set)."""
    config = app.plugins.loaded["imagine"].context.config
    assert isinstance(config, ImagineSettings)
    return config


async def set_server_setting(app: App, key: str, value: object, server: str = "s1") -> None:
    """An admin of ``server`` sets one of imagine's per-server settings."""
    line = f"/plugins config imagine {key} {value}"
    parts = await run(app, line, server=server, user="admin", admin=True)
    assert parts == [Text(f"imagine.{key} is now {value!r} in this server.")], parts


@pytest.fixture
def fake() -> FakeImageBackend:
    """The image back end the ``app`` gets (pass it to ``App.start`` as ``image_backend``)."""
    return FakeImageBackend()


@pytest.fixture
def model() -> ScriptedChatModel:
    """Answers "ok" to every chat message unless a test scripts otherwise."""
    return ScriptedChatModel(messages=script("ok", repeat=True))


@pytest.fixture
async def app(
    settings: Settings, fake: FakeImageBackend, model: ScriptedChatModel
) -> AsyncIterator[App]:
    """A started bot whose imagine plugin uses ``fake``."""
    started = await App.start(settings, chat_model=model, image_backend=fake)
    try:
        yield started
    finally:
        await started.aclose()


def command(text: str, **who: Any) -> CommandEvent:
    """A console-style command line such as ``/imagine a cat --seed 7``."""
    name, _, rest = text.lstrip("/").partition(" ")
    return CommandEvent(origin(**who), name, rest)


async def run(app: App, text: str, **who: Any) -> list[ReplyPart]:
    """Every part of the reply to a command line."""
    return await collect(app, command(text, **who))


def start(app: App, event: Event | str, **who: Any) -> asyncio.Task[list[ReplyPart]]:
    """Send an event (or command line) in the background; the task gives its parts."""
    if isinstance(event, str):
        event = command(event, **who)
    return asyncio.create_task(collect(app, event))


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``condition()`` holds (polling), or fail the test."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def job_id_of(parts: list[ReplyPart]) -> str:
    """The job id carried by the first button row of a reply."""
    buttons = next(p for p in parts if isinstance(p, Buttons))
    return buttons.buttons[0].custom_id.rsplit(":", 1)[1]


async def stored(app: App, job_id: str) -> ImageJob:
    """The job's row."""
    job = await JobStore(app.services.storage.engine).get(job_id)
    assert job is not None, f"no job {job_id}"
    return job


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Wait until the async ``check()`` holds (polling), or fail the test."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def pending_job(app: App, prompt: str) -> str:
    """The id of the queued or running job with this prompt (waits for it to exist)."""
    store = JobStore(app.services.storage.engine)
    found: list[str] = []

    async def look() -> bool:
        found[:] = [j.id for j in await store.unfinished() if j.params["prompt"] == prompt]
        return bool(found)

    await eventually(look)
    return found[0]


async def status_becomes(app: App, job_id: str, status: str) -> None:
    """Wait until the job's stored status is ``status``."""

    async def check() -> bool:
        return (await stored(app, job_id)).status == status

    await eventually(check)
