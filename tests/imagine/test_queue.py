"""Stories of fairness, pending limits and daily quotas (per user, server and bot)."""

from __future__ import annotations

import asyncio

from bot.app import App
from bot.config import Settings
from core.events import Buttons, Error
from plugins.imagine.jobs import JobStore
from plugins.imagine.queue import FairQueue
from tests.fakes import ScriptedChatModel
from tests.imagine.conftest import (
    imagine_config,
    pending_job,
    run,
    set_server_setting,
    start,
    until,
)
from tests.imagine.fake_backend import FakeImageBackend


def test_the_fair_queue_takes_servers_and_users_in_turn() -> None:
    queue: FairQueue[str] = FairQueue()
    for n in range(5):
        queue.push(f"a{n}", 1, 10 + n % 2, "x")  # server 1: users 10 and 11 alternate
    queue.push("b0", 2, 20, "x")
    assert list(queue.order()) == ["a0", "b0", "a1", "a2", "a3", "a4"]
    assert queue.remove("a2") == "x" and "a2" not in queue
    taken = []
    while (item := queue.pop()) is not None:
        taken.append(item[0])
    assert taken == ["a0", "b0", "a1", "a4", "a3"]  # users still alternate
    assert len(queue) == 0


async def test_a_busy_server_does_not_starve_others_and_users_alternate(
    settings: Settings, fake: FakeImageBackend, app: App
) -> None:
    await set_server_setting(app, "max_pending_per_user", 10)
    fake.hold = True
    tasks = [start(app, "/imagine x1", user="x", channel="c1")]
    await until(lambda: len(fake.submitted) == 1)
    tasks.append(start(app, "/imagine x2", user="x", channel="c2"))
    await until(lambda: len(fake.submitted) == 2)  # two in flight: max_batch (1) * 2
    for line, who, channel in [
        ("/imagine x3", "x", "c3"),
        ("/imagine x4", "x", "c4"),
        ("/imagine y1", "y", "c1"),
        ("/imagine y2", "y", "c2"),
    ]:
        tasks.append(start(app, line, user=who, channel=channel))
        await pending_job(app, line.split()[-1])  # queued in this order
    tasks.append(start(app, "/imagine b1", server="s2", user="b"))
    await pending_job(app, "b1")
    fake.release()
    await asyncio.gather(*tasks)
    order = [request.prompt for request in fake.submitted]
    assert order == ["x1", "x2", "x3", "b1", "y1", "x4", "y2"]


async def test_queued_jobs_report_their_position(app: App, fake: FakeImageBackend) -> None:
    fake.hold = True
    first = start(app, "/imagine one", channel="c1")
    second = start(app, "/imagine two", channel="c2")
    await until(lambda: len(fake.submitted) == 2)
    third = start(app, "/imagine three", channel="c3")
    await asyncio.sleep(0.1)
    fake.release()
    parts = await third
    details = [getattr(p, "detail", "") for p in parts]
    assert "queued, position 1" in details
    await asyncio.gather(first, second)


async def test_a_user_with_too_many_pending_jobs_is_told_the_limit(
    app: App, fake: FakeImageBackend
) -> None:
    await set_server_setting(app, "max_pending_per_user", 2)
    fake.hold = True
    tasks = [start(app, "/imagine a", channel="c1"), start(app, "/imagine b", channel="c2")]
    await until(lambda: len(fake.submitted) == 2)
    refused = await run(app, "/imagine c", channel="c3")
    assert refused == [
        Error(
            "You already have 2 image jobs queued (limit 2). "
            "Wait until one finishes, or cancel one."
        )
    ]
    # another user is not affected, and an admin may raise the limit for this server
    tasks.append(start(app, "/imagine d", user="u2"))
    await until(lambda: len(fake.submitted) == 2 and len(tasks) == 3)
    reply = await run(
        app, "/plugins config imagine max_pending_per_user 3", admin=True, channel="mods"
    )
    assert "imagine.max_pending_per_user is now 3" in str(reply)
    tasks.append(start(app, "/imagine e", channel="c4"))
    fake.release()
    results = await asyncio.gather(*tasks)
    assert all(not isinstance(parts[-1], Error) for parts in results)
    assert sorted(r.prompt for r in fake.submitted) == ["a", "b", "d", "e"]


async def test_a_server_over_its_daily_quota_is_told_when_it_resets(
    app: App, fake: FakeImageBackend
) -> None:
    imagine_config(app).images_per_day_per_server = 3
    await run(app, "/imagine a --count 2")
    refused = await run(app, "/imagine b --count 2")
    assert len(refused) == 1 and isinstance(refused[0], Error)
    message = refused[0].message
    assert message.startswith(
        "This server's daily quota is 3 images and 2 are used today; you asked for 2. "
        "The quota resets at 00:00 UTC (in "
    )
    assert (await run(app, "/imagine c"))[-1] != refused[0]  # one more still fits
    assert isinstance((await run(app, "/imagine d"))[-1], Error)
    assert not isinstance((await run(app, "/imagine e", server="s2"))[-1], Error)


async def test_five_concurrent_imagines_from_one_user_admit_exactly_the_pending_limit(
    settings: Settings, fake: FakeImageBackend, model: ScriptedChatModel, database_url: str
) -> None:
    settings.storage.url = database_url  # SQLite, then the real PostgreSQL
    settings.plugins.config["imagine"]["max_pending_per_user"] = 3
    fake.hold = True
    async with await App.start(settings, chat_model=model, image_backend=fake) as app:
        tasks = [start(app, f"/imagine cat {n}", channel=f"c{n}") for n in range(5)]
        await until(lambda: sum(t.done() for t in tasks) == 2)
        refused = [t for t in tasks if t.done()]
        assert [await t for t in refused] == [[PENDING_REFUSAL]] * 2
        assert len(await JobStore(app.services.storage.engine).unfinished()) == 3
        fake.release()
        admitted = await asyncio.gather(*(t for t in tasks if t not in refused))
    assert all(isinstance(parts[-1], Buttons) for parts in admitted)
    assert len(admitted) == 3 and len(fake.submitted) == 3


PENDING_REFUSAL = Error(
    "You already have 3 image jobs queued (limit 3). Wait until one finishes, or cancel one."
)


async def test_a_user_over_their_daily_quota_is_refused_in_every_server_and_dm(
    app: App, fake: FakeImageBackend
) -> None:
    imagine_config(app).images_per_day_per_user = 3
    await run(app, "/imagine a --count 2")  # in server s1
    refused = await run(app, "/imagine b --count 2", server="dm:u1")  # their DM
    assert len(refused) == 1 and isinstance(refused[0], Error)
    assert refused[0].message.startswith(
        "Your daily quota is 3 images and 2 are used today; you asked for 2. "
        "The quota resets at 00:00 UTC (in "
    )
    assert not isinstance((await run(app, "/imagine c", server="dm:u1"))[-1], Error)
    assert isinstance((await run(app, "/imagine d", server="s3"))[-1], Error)
    assert not isinstance((await run(app, "/imagine e", user="u2"))[-1], Error)
    assert len(fake.submitted) == 3


async def test_the_bots_global_daily_quota_covers_everybody(
    app: App, fake: FakeImageBackend
) -> None:
    imagine_config(app).images_per_day_global = 2
    await run(app, "/imagine a", user="u1")
    await run(app, "/imagine b", user="u2", server="s2")
    refused = await run(app, "/imagine c", user="u3", server="s3")
    assert len(refused) == 1 and isinstance(refused[0], Error)
    assert refused[0].message.startswith(
        "The daily quota of this bot (for everyone) is 2 images and 2 are used today. "
    )
