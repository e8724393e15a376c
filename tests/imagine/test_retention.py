"""Stories of image retention: old images go by age (``keep_days``) and by total size
(``max_store_mb``), together with what points at them, at start-up and on every sweep."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import App
from bot.config import Settings
from core.events import ButtonEvent, Error
from plugins.imagine import retention
from plugins.imagine.files import ImageFiles
from plugins.imagine.jobs import ImageJob, JobStore
from tests.core.conftest import collect, origin
from tests.fakes import ScriptedChatModel
from tests.imagine.conftest import job_id_of, run, stored
from tests.imagine.fake_backend import FakeImageBackend, solid_png

DAY = 86_400


async def _job_with_file(app: App, job_id: str, *, age_days: float, status: str) -> Path:
    """A job made ``age_days`` ago (row and file), as if by an earlier run of the bot."""
    made = datetime.now(UTC) - timedelta(days=age_days)
    folder = app.services.settings.data_dir / "images" / made.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}-0.png"
    path.write_bytes(solid_png(1, 8, 8))
    os.utime(path, (made.timestamp(), made.timestamp()))
    ids = await app.services.storage.identify(origin())
    done = status == "done"
    job = ImageJob(
        id=job_id,
        status=status,
        params={"prompt": "old"},
        seed=1,
        count=1,
        server_pk=ids.server_pk,
        user_pk=ids.user_pk,
        channel_pk=ids.channel_pk,
        created_at=made,
        results=(str(path),) if done else (),
        sha256=("x",) if done else (),
    )
    await JobStore(app.services.storage.engine).create(job)
    return path


def _age(paths: list[Path], seconds_ago: float) -> None:
    moment = time.time() - seconds_ago
    for path in paths:
        os.utime(path, (moment, moment))


def _all_exist(paths: tuple[str, ...]) -> bool:
    return all(Path(path).exists() for path in paths)


async def test_images_older_than_keep_days_go_with_their_rows_at_start_up(
    settings: Settings, model: ScriptedChatModel
) -> None:
    settings.plugins.config["imagine"]["keep_days"] = 7
    async with await App.start(settings, chat_model=model, image_backend=FakeImageBackend()) as app:
        old = await _job_with_file(app, "a" * 32, age_days=10, status="done")
        young = await _job_with_file(app, "b" * 32, age_days=3, status="done")
        fresh = job_id_of(await run(app, "/imagine today"))
    async with await App.start(settings, chat_model=model, image_backend=FakeImageBackend()) as app:
        store = JobStore(app.services.storage.engine)
        assert not old.exists() and await store.get("a" * 32) is None
        assert young.exists() and (await stored(app, "b" * 32)).results == (str(young),)
        assert _all_exist((await stored(app, fresh)).results)


async def test_the_oldest_images_go_until_the_store_fits_max_store_mb(
    app: App, fake: FakeImageBackend
) -> None:
    jobs = [job_id_of(await run(app, f"/imagine cat {n}")) for n in range(3)]
    paths = [Path((await stored(app, job_id)).results[0]) for job_id in jobs]
    for n, path in enumerate(paths):
        _age([path], 300 - n * 100)  # the first is the oldest
    fits_two = (paths[1].stat().st_size + paths[2].stat().st_size) / 1024 / 1024
    store = JobStore(app.services.storage.engine)
    files = ImageFiles(app.services.settings.data_dir)

    swept = await retention.sweep(files, store, keep_days=0, max_store_mb=fits_two)

    assert (swept.jobs, swept.files, swept.rows) == (1, 1, 0)
    assert [path.exists() for path in paths] == [False, True, True]
    trimmed = await stored(app, jobs[0])
    assert (trimmed.status, trimmed.results, trimmed.sha256) == ("done", (), ())
    # the job still counts against today's quota, and its buttons say what happened
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert await store.images_since(today) == 3
    pressed = await collect(app, ButtonEvent(origin(), f"imagine:variations:{jobs[0]}"))
    assert pressed == [
        Error("That image is no longer stored (old images are deleted after a while).")
    ]
    # no row points at a missing file
    for job_id in jobs:
        assert _all_exist((await stored(app, job_id)).results)


async def test_a_sweep_spares_pending_jobs_foreign_files_and_todays_rows(
    app: App, fake: FakeImageBackend
) -> None:
    # a job whose files are written but not yet recorded as done: still queued
    pending = await _job_with_file(app, "c" * 32, age_days=5, status="queued")
    # a job whose file someone already deleted by hand
    gone = await _job_with_file(app, "d" * 32, age_days=5, status="done")
    gone.unlink()
    foreign = pending.parent / "notes.txt"
    foreign.write_text("not an image of ours")
    _age([foreign], 9 * DAY)
    today = job_id_of(await run(app, "/imagine today"))
    today_files = [Path(p) for p in (await stored(app, today)).results]
    _age(today_files, 2 * DAY)  # its file is old enough to go; its row is from today
    store = JobStore(app.services.storage.engine)
    files = ImageFiles(app.services.settings.data_dir)

    swept = await retention.sweep(files, store, keep_days=1, max_store_mb=0)

    assert pending.exists() and foreign.exists()
    assert not any(path.exists() for path in today_files)
    assert (await stored(app, today)).results == ()  # the row stays: it counts today
    assert await store.get("d" * 32) is None  # ended 5 days ago: deleted
    assert (await stored(app, "c" * 32)).status == "queued"
    assert swept.rows == 1 and swept.jobs == 1


async def test_zero_keeps_everything(app: App, fake: FakeImageBackend) -> None:
    old = await _job_with_file(app, "e" * 32, age_days=400, status="done")
    store = JobStore(app.services.storage.engine)
    files = ImageFiles(app.services.settings.data_dir)
    swept = await retention.sweep(files, store, keep_days=0, max_store_mb=0)
    assert swept == retention.Swept() and old.exists()
    assert (await stored(app, "e" * 32)).results == (str(old),)
